//! `#[packable]` misuse gives readable errors pointing at the offending item.

#[test]
fn misuse_is_a_readable_compile_error() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/*.rs");
}
