//! The README's worked example (`examples/ordering_assumption.rs`), run as
//! a test: the property test breaks the dispatcher's ordering assumption,
//! shrinks the counterexample, busbar's `no_stale` checker sees it in the
//! printed scenario, and the fixed dispatcher passes. The example asserts
//! each step itself (and exits non-zero when one fails).

#[path = "../examples/ordering_assumption.rs"]
mod example;

#[test]
fn the_worked_example_finds_shrinks_and_fixes() {
    example::main();
}
