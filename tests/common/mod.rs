//! Helpers shared by the integration tests.

use proptest::test_runner::Config;

/// Proptest settings: `default_cases` cases unless `BUSBAR_PROPTEST_CASES`
/// says otherwise (e.g. `BUSBAR_PROPTEST_CASES=500 cargo test` for a deeper
/// search; the default keeps the suite fast).
pub fn proptest_config(default_cases: u32) -> Config {
    let cases = std::env::var("BUSBAR_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    Config {
        cases,
        ..Config::default()
    }
}
