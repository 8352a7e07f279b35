/* tools/emulate/procinfo.c: run inside Wine by `run.py --soak`. Prints one line per process
 * of the Wine session, from Wine's server snapshot:
 *   pid=<pid> threads=<n> handles=<n> name=<image> tids=<tid,tid,...>
 * threads: NumberOfThreads (SystemProcessInformation); handles: the process's open handles,
 * counted in SystemHandleInformation (Wine's SystemProcessInformation HandleCount is the
 * handle table's allocated size, not the number in use). Ids in hex, as Wine's debug log. */
#include <windows.h>
#include <winternl.h>
#include <stdio.h>
#include <stdlib.h>

#define STATUS_INFO_LENGTH_MISMATCH ((NTSTATUS)0xC0000004L)

typedef struct {
    ULONG OwnerPid;
    BYTE ObjectType;
    BYTE HandleFlags;
    USHORT HandleValue;
    PVOID ObjectPointer;
    ULONG AccessMask;
} HANDLE_ENTRY;

typedef struct {
    ULONG Count;
    HANDLE_ENTRY Handle[1];
} HANDLE_INFO;

typedef struct {
    LARGE_INTEGER KernelTime, UserTime, CreateTime;
    ULONG WaitTime;
    PVOID StartAddress;
    CLIENT_ID ClientId;
    LONG Priority, BasePriority;
    ULONG ContextSwitches, State, WaitReason;
} THREAD_INFO;

static void *query(SYSTEM_INFORMATION_CLASS cls) {
    ULONG size = 1 << 16, need = 0;
    char *buf = NULL;
    for (;;) {
        buf = realloc(buf, size);
        NTSTATUS st = NtQuerySystemInformation(cls, buf, size, &need);
        if (st == 0) return buf;
        if (st != STATUS_INFO_LENGTH_MISMATCH) {
            printf("error class=%d status=0x%lx\n", (int)cls, (unsigned long)st);
            exit(1);
        }
        size = need > size ? need + 4096 : size * 2;
    }
}

int main(void) {
    HANDLE_INFO *h = query((SYSTEM_INFORMATION_CLASS)16); /* SystemHandleInformation */
    char *procs = query(SystemProcessInformation);
    for (SYSTEM_PROCESS_INFORMATION *p = (void *)procs;;
         p = (void *)((char *)p + p->NextEntryOffset)) {
        ULONG pid = (ULONG)(ULONG_PTR)p->UniqueProcessId, open = 0;
        for (ULONG i = 0; i < h->Count; i++) open += h->Handle[i].OwnerPid == pid;
        printf("pid=%lx threads=%lu handles=%lu name=%.*ls tids=", pid,
               (unsigned long)p->NumberOfThreads, (unsigned long)open,
               (int)(p->ImageName.Length / 2), p->ImageName.Buffer ? p->ImageName.Buffer : L"");
        THREAD_INFO *t = (THREAD_INFO *)(p + 1);
        for (ULONG i = 0; i < p->NumberOfThreads; i++)
            printf("%s%lx", i ? "," : "", (unsigned long)(ULONG_PTR)t[i].ClientId.UniqueThread);
        printf("\n");
        if (!p->NextEntryOffset) break;
    }
    return 0;
}
