/*
 * bcryptprimitives.dll for Wine 8.0, which lacks it: Rust's std (1.78+) on Windows takes its
 * random bytes (HashMap keys) from bcryptprimitives!ProcessPrng, so every Rust test binary
 * fails to load (c0000135) without this DLL. The one export forwards to advapi32's
 * SystemFunction036 (RtlGenRandom), which Wine implements. Only for running the host-model
 * tests under Wine (tools/wine-gnu/run.sh); never shipped.
 */
#include <windows.h>

/* advapi32's RtlGenRandom, under its exported name. */
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    /* RtlGenRandom takes a ULONG length: fill larger requests in chunks. */
    while (length > 0) {
        ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk)) {
            return FALSE;
        }
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
