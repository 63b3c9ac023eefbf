//! Models are plain data whose names round-trip: every shipped scenario,
//! serialised back to TOML, parses to the same spec and runs to the same
//! digest.

use std::path::Path;

use busbar::Scenario;
use busbar::scenario::ScenarioSpec;

#[test]
fn shipped_scenarios_round_trip_through_toml() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        seen += 1;
        let original = Scenario::from_file(&path).unwrap();
        let text = toml::to_string(original.spec())
            .unwrap_or_else(|e| panic!("{}: does not serialise: {e}", path.display()));
        let again = Scenario::parse(&text, "roundtrip.toml", &dir).unwrap_or_else(|e| {
            panic!(
                "{}: serialised form does not load: {e}\n{text}",
                path.display()
            )
        });
        assert_eq!(again.spec(), original.spec(), "{}", path.display());
        let spec: ScenarioSpec = toml::from_str(&text).unwrap();
        assert_eq!(spec, *original.spec());
        if original.name() != "large-100x5" {
            assert_eq!(
                again.run(3, 0).unwrap().digest,
                original.run(3, 0).unwrap().digest,
                "{}",
                path.display()
            );
        }
    }
    assert!(seen >= 4, "found {seen} scenarios");
}
