//! The README's TOML snippets are one scenario, split by topic: together
//! they must load, so the documented format cannot drift from the parser.

use std::path::Path;

use busbar::Scenario;

fn toml_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_start()) {
            (None, l) if l.starts_with("```toml") => current = Some(String::new()),
            (Some(b), l) if l.starts_with("```") => {
                blocks.push(std::mem::take(b));
                current = None;
            }
            (Some(b), _) => {
                b.push_str(line);
                b.push('\n');
            }
            _ => {}
        }
    }
    blocks
}

#[test]
fn the_readme_scenario_snippets_load_together() {
    let readme = include_str!("../README.md");
    let blocks = toml_blocks(readme);
    assert!(blocks.len() >= 3, "found {} toml blocks", blocks.len());
    let text = blocks.concat();
    let s = Scenario::parse(&text, "README.md", Path::new(env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("the README's scenario does not load: {e}\n{text}"));
    // What the snippets promise: 100 replicated microgrids and the two
    // general-purpose agents, with the link override on mg3.
    let names = s.agent_names();
    assert!(names.contains(&"mg100.load".to_string()));
    assert!(names.contains(&"sensor".to_string()) && names.contains(&"collector".to_string()));
    assert_eq!(s.spec().network.links[0].from, "mg3");
    assert!(s.build(1, 0).is_ok());
}
