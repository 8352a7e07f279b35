//! What must not compile: the type system, not documentation, keeps threads sound.
//! (trybuild drives rustc; Miri cannot run it.)

#[test]
#[cfg_attr(miri, ignore = "trybuild runs rustc")]
fn unsound_uses_do_not_compile() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
