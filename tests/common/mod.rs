//! Helpers shared by the integration tests.

use proptest::test_runner::Config;

/// Proptest settings: `default_cases` cases unless `BUSBAR_PROPTEST_CASES`
/// says otherwise (e.g. `BUSBAR_PROPTEST_CASES=500 cargo test` for a deeper
/// search; the default keeps the suite fast).
#[allow(dead_code)] // not every test crate runs proptests
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

/// Every conservation identity of docs/summary.md that the summary alone
/// can check (messages, copies, acks, tracked deliveries and publishes).
#[allow(dead_code)] // not every test crate checks a summary
pub fn assert_conserved(s: &busbar::Summary) {
    let q = &s.qos.counts;
    assert_eq!(
        s.published + s.duplicated_uplink + q.retransmitted_uplink,
        s.routed + s.dropped_uplink + q.expired_uplink + s.in_flight_uplink + s.at_broker,
        "uplink: {s:#?}"
    );
    assert_eq!(
        s.copies + s.retained_copies + q.retransmitted_downlink + s.duplicated_downlink + s.evicted,
        s.delivered + s.dropped_downlink + s.in_flight_downlink,
        "downlink: {s:#?}"
    );
    assert_eq!(
        q.acks_sent + q.acks_duplicated,
        q.acks_received + q.acks_dropped + s.qos.acks_in_flight,
        "acks: {s:#?}"
    );
    assert_eq!(
        q.tracked_deliveries,
        q.acked_deliveries
            + q.expired_deliveries
            + q.dead_lettered_deliveries
            + s.qos.unacked_deliveries,
        "deliveries: {s:#?}"
    );
    assert_eq!(
        q.tracked_publishes,
        q.acked_publishes
            + q.expired_publishes
            + q.dead_lettered_publishes
            + s.qos.unacked_publishes,
        "publishes: {s:#?}"
    );
    if let Some(ss) = &s.sessions {
        let c = &ss.counts;
        assert_eq!(
            c.control_sent + c.acks_sent + c.control_duplicated,
            c.control_arrived
                + c.acks_arrived
                + c.control_lost
                + c.acks_lost
                + ss.control_in_flight,
            "control: {s:#?}"
        );
        assert_eq!(
            c.queued,
            c.resumed + c.expired_drops + ss.held,
            "kept: {s:#?}"
        );
        assert!(ss.held <= s.in_flight_downlink, "{s:#?}");
    }
}

/// (offset, body length, tag) of every frame of a well-formed trace. A
/// frame is `len u32 | tag u8 | body | check u64`: 13 bytes more than its
/// body.
#[allow(dead_code)] // only the trace tests
pub fn frames(bytes: &[u8]) -> Vec<(usize, usize, u8)> {
    let mut v = Vec::new();
    let mut pos = 10;
    while pos < bytes.len() {
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        v.push((pos, len, bytes[pos + 4]));
        pos += 5 + len + 8;
    }
    assert_eq!(pos, bytes.len(), "frames tile the file");
    v
}

/// Recomputes every frame's check as the module docs define the chain
/// (XXH3-64 of the preamble seeds the first; each frame's check, over its
/// length, tag and body, seeds the next): what a writer would have written
/// for these frames. Tests use it to get past the checksums to the layers
/// beneath, and it pins the documented definition.
#[allow(dead_code)] // only the trace tests
pub fn rechain(bytes: &mut [u8]) {
    let mut seed = xxhash_rust::xxh3::xxh3_64(&bytes[..10]);
    for (at, len, _) in frames(bytes) {
        let end = at + 5 + len;
        seed = xxhash_rust::xxh3::xxh3_64_with_seed(&bytes[at..end], seed);
        bytes[end..end + 8].copy_from_slice(&seed.to_le_bytes());
    }
}

/// Runs `s` with `seed` (environment 0) into a trace file, then asserts
/// that `busbar::replay` re-runs it identically, record for record; returns
/// the trace's header (its scenario text records the run's settings).
#[allow(dead_code)] // not every test crate replays
pub fn assert_replays(s: &busbar::Scenario, seed: u64) -> busbar::trace::Header {
    use busbar::replay::{Comparison, replay};
    let dir = tempfile::TempDir::new().unwrap();
    let path = dir.path().join("t.bbt");
    let file = std::fs::File::create(&path).unwrap();
    let mut sim = s
        .builder(seed, 0)
        .trace_to(Box::new(std::io::BufWriter::new(file)), s.header(seed, 0))
        .build()
        .unwrap();
    let summary = s.run_sim(&mut sim).unwrap();
    drop(sim);
    let mut r = busbar::trace::TraceReader::new(std::fs::File::open(&path).unwrap()).unwrap();
    let header = r.header().clone();
    assert_eq!(
        replay(&mut r).unwrap(),
        Comparison::Identical(summary.trace_records)
    );
    header
}
