//! `busbar report`: one self-contained HTML file of plots, from a trace or
//! from a batch's results CSV.
//!
//! The plots are SVG drawn by `plotters` (its SVG backend only: no fonts,
//! no bitmaps) and written inline, so the file opens with no network access
//! and references nothing outside itself. A trace gives four plots, all
//! from one pass over its records: the latency distribution per channel
//! (publish to delivery), the age of information over time, the deadline
//! misses per grid step (or per time bucket without a grid), and the drops
//! by reason over time. A results CSV gives, for each headline outcome, its
//! mean over the environments of each variant with the 95 % confidence
//! interval, against the swept parameter.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Seek};

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::rollout::table::{HEADLINE, Running};
use crate::time::SimDuration;
use crate::trace::{EventKind, Reason, Record, TraceError, TraceReader};

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// The trace could not be read.
    #[error(transparent)]
    Trace(#[from] TraceError),
    /// The results CSV could not be read or lacks a column a report needs.
    #[error("results CSV: {0}")]
    Csv(String),
    /// A plot could not be drawn.
    #[error("plot {0}: {1}")]
    Plot(String, String),
}

/// One plot: a title, an explanation, and the SVG.
#[derive(Clone, Debug)]
pub struct Plot {
    /// The plot's heading.
    pub title: String,
    /// What it shows and how it was computed.
    pub caption: String,
    /// The SVG document (`<svg …>…</svg>`).
    pub svg: String,
}

/// A report: a title, facts about the input, and plots.
#[derive(Clone, Debug)]
pub struct Report {
    /// The page title.
    pub title: String,
    /// (label, value) facts shown above the plots.
    pub facts: Vec<(String, String)>,
    /// The plots, in order.
    pub plots: Vec<Plot>,
}

/// Plot size in pixels.
const SIZE: (u32, u32) = (760, 380);
/// Time buckets of the over-time plots.
const BUCKETS: usize = 100;
/// Channel groups drawn in the latency plot (the rest are "other").
const MAX_SERIES: usize = 8;

impl Report {
    /// The whole HTML page: inline CSS and SVG, no script, no external
    /// reference.
    pub fn to_html(&self) -> String {
        let mut h = String::new();
        let _ = write!(
            h,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <title>{}</title>\n<style>\nbody{{font-family:sans-serif;margin:2em;max-width:820px;color:#222}}\n\
             table{{border-collapse:collapse;margin-bottom:1.5em}}\ntd{{padding:2px 12px 2px 0;vertical-align:top}}\n\
             td:first-child{{color:#555}}\nfigure{{margin:0 0 2em 0}}\nfigcaption{{font-size:0.9em;color:#444;max-width:760px}}\n\
             </style>\n</head>\n<body>\n<h1>{}</h1>\n<table>\n",
            esc(&self.title),
            esc(&self.title)
        );
        for (k, v) in &self.facts {
            let _ = writeln!(h, "<tr><td>{}</td><td>{}</td></tr>", esc(k), esc(v));
        }
        h.push_str("</table>\n");
        for p in &self.plots {
            let _ = write!(
                h,
                "<figure>\n<h2>{}</h2>\n{}\n<figcaption>{}</figcaption>\n</figure>\n",
                esc(&p.title),
                p.svg,
                esc(&p.caption)
            );
        }
        h.push_str("</body>\n</html>\n");
        h
    }
}

/// A tick label: at most six decimals, trailing zeros dropped (the
/// float steps of an axis are not the values a user typed).
fn tick(x: f64) -> String {
    let s = format!("{x:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

/// HTML text escaping.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            _ => o.push(c),
        }
    }
    o
}

/// Whether `bytes` start like a trace file.
pub fn is_trace(bytes: &[u8]) -> bool {
    bytes.starts_with(b"BUSBARTR")
}

// ---------------------------------------------------------------------------
// From a trace

/// The channel's group: its name without the environment prefix, with each
/// level that names an agent (or an agent's microgrid, the part of a name
/// before its first `.`) replaced by `+`, so that one plot line stands for
/// "every microgrid's state updates".
fn channel_group(name: &str, prefix: &str, agents: &std::collections::BTreeSet<&str>) -> String {
    let rest = name.strip_prefix(prefix).unwrap_or(name);
    rest.split('/')
        .map(|level| if agents.contains(level) { "+" } else { level })
        .collect::<Vec<_>>()
        .join("/")
}

/// The grid's step and deadline in the trace's scenario, if it has a
/// `[grid]` table (the environment's own defaults apply).
fn grid_timing(scenario: &str) -> Option<(SimDuration, SimDuration)> {
    let v: toml::Table = toml::from_str(scenario).ok()?;
    let spec: crate::grid::GridSpec = v.get("grid")?.clone().try_into().ok()?;
    (spec.step.as_nanos() > 0).then(|| (spec.step, spec.deadline()))
}

/// What one pass over a trace gathers.
struct Gathered {
    end_ns: u64,
    /// Latencies (ns) of deliveries, by channel group.
    latency: BTreeMap<String, Vec<u64>>,
    /// Deliveries as (time, receiver, channel, sent), for the age of
    /// information.
    deliveries: Vec<(u64, u32, u32, u64)>,
    /// `late` records as (time, sent).
    late: Vec<(u64, u64)>,
    /// The grid's state-update channel and environment agent, if any.
    state: Option<(u32, u32)>,
    /// Devices that published a state update.
    devices: std::collections::BTreeSet<u32>,
    /// State updates delivered to the environment, as (sender, sent, time).
    updates: Vec<(u32, u64, u64)>,
    /// Drops as (time, reason code).
    drops: Vec<(u64, u16)>,
}

/// Builds the report of a trace.
pub fn from_trace<R: Read + Seek>(reader: &mut TraceReader<R>) -> Result<Report, ReportError> {
    let header = reader.header().clone();
    let footer = reader.footer().clone();
    let prefix = format!("env{}/", header.env);
    let mut agents: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();
    for a in &footer.agents {
        agents.insert(a.as_str());
        if let Some((mg, _)) = a.split_once('.') {
            agents.insert(mg);
        }
    }
    let groups: Vec<String> = footer
        .channels
        .iter()
        .map(|c| channel_group(c, &prefix, &agents))
        .collect();
    let mut g = Gathered {
        end_ns: 0,
        latency: BTreeMap::new(),
        deliveries: Vec::new(),
        late: Vec::new(),
        drops: Vec::new(),
        state: None,
        devices: Default::default(),
        updates: Vec::new(),
    };
    let prefix_env = format!("env{}", header.env);
    let state_channel = crate::grid::protocol::state_updates(&prefix_env);
    let timing = grid_timing(&header.scenario);
    if timing.is_some() {
        let ch = footer.channels.iter().position(|c| *c == state_channel);
        let env = footer
            .agents
            .iter()
            .position(|a| a == crate::grid::protocol::ENV_AGENT);
        if let (Some(ch), Some(env)) = (ch, env) {
            g.state = Some((ch as u32, env as u32));
        }
    }
    let mut cursor = reader.cursor();
    while let Some(batch) = cursor.next_batch()? {
        for r in batch {
            gather(&mut g, r, &groups);
        }
    }
    let plots = vec![
        latency_plot(&g)?,
        age_plot(&g)?,
        late_plot(&g, timing)?,
        drops_plot(&g)?,
    ];
    let name = toml::from_str::<toml::Table>(&header.scenario)
        .ok()
        .and_then(|t| {
            t.get("simulation")?
                .get("name")?
                .as_str()
                .map(str::to_string)
        })
        .unwrap_or_else(|| header.scenario_path.clone());
    let facts = vec![
        ("scenario".into(), header.scenario_path.clone()),
        (
            "seed, environment".into(),
            format!("{}, {}", header.seed, header.env),
        ),
        ("records".into(), footer.records.to_string()),
        ("simulated".into(), SimDuration(g.end_ns).to_string()),
        (
            "agents, channels".into(),
            format!("{}, {}", footer.agents.len(), footer.channels.len()),
        ),
        (
            "stopped early".into(),
            footer.stopped.clone().unwrap_or_else(|| "no".into()),
        ),
    ];
    Ok(Report {
        title: format!("busbar run: {name}"),
        facts,
        plots,
    })
}

fn gather(g: &mut Gathered, r: &Record, groups: &[String]) {
    g.end_ns = g.end_ns.max(r.time_ns);
    if let Some((ch, env)) = g.state
        && r.channel == ch
    {
        match r.event {
            EventKind::Publish => {
                g.devices.insert(r.sender);
            }
            EventKind::Deliver if r.node == env => {
                g.updates.push((r.sender, r.sent_ns, r.time_ns));
            }
            _ => {}
        }
    }
    match r.event {
        EventKind::Deliver => {
            let group = groups
                .get(r.channel as usize)
                .cloned()
                .unwrap_or_else(|| "?".into());
            g.latency
                .entry(group)
                .or_default()
                .push(r.time_ns.saturating_sub(r.sent_ns));
            g.deliveries.push((r.time_ns, r.node, r.channel, r.sent_ns));
        }
        EventKind::Late => g.late.push((r.time_ns, r.sent_ns)),
        EventKind::Drop => g.drops.push((r.time_ns, r.detail & 0xff)),
        _ => {}
    }
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// The unit of a virtual-time axis that ends at `end_ns`: seconds past
/// 10 s, else milliseconds; (ns per unit, name).
fn time_unit(end_ns: u64) -> (f64, &'static str) {
    if end_ns > 10_000_000_000 {
        (1e9, "s")
    } else {
        (1e6, "ms")
    }
}

fn plot_err(title: &str) -> impl Fn(String) -> ReportError + '_ {
    move |e| ReportError::Plot(title.to_string(), e)
}

/// Draws into a fresh SVG string.
fn svg(
    title: &str,
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, plotters::coord::Shift>) -> Result<(), String>,
) -> Result<String, ReportError> {
    let mut s = String::new();
    {
        let root = SVGBackend::with_string(&mut s, SIZE).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|e| plot_err(title)(e.to_string()))?;
        draw(&root).map_err(plot_err(title))?;
        root.present().map_err(|e| plot_err(title)(e.to_string()))?;
    }
    Ok(s)
}

/// A message drawn in the middle of an empty plot.
fn empty(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    text: &str,
) -> Result<(), String> {
    let style = TextStyle::from(("sans-serif", 16).into_font()).color(&BLACK);
    root.draw(&Text::new(
        text.to_string(),
        (40, (SIZE.1 / 2) as i32),
        style,
    ))
    .map_err(|e| e.to_string())
}

/// The chart of the over-time and distribution plots.
type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Draws one line of `pts` in `colour`, labelled in the legend.
fn labelled_line(
    c: &mut Chart<'_, '_>,
    pts: impl IntoIterator<Item = (f64, f64)>,
    colour: RGBAColor,
    label: String,
) -> Result<(), String> {
    c.draw_series(LineSeries::new(pts, colour.stroke_width(2)))
        .map_err(|e| e.to_string())?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2)));
    Ok(())
}

/// Draws the legend of the labelled lines at `pos`.
fn legend<'a, 'b: 'a>(c: &mut Chart<'a, 'b>, pos: SeriesLabelPosition) -> Result<(), String> {
    c.configure_series_labels()
        .position(pos)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()
        .map_err(|e| e.to_string())
}

fn latency_plot(g: &Gathered) -> Result<Plot, ReportError> {
    let title = "Latency distribution per channel";
    // The largest groups first; the rest pooled.
    let mut groups: Vec<(&String, &Vec<u64>)> = g.latency.iter().collect();
    groups.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(b.0)));
    let mut series: Vec<(String, Vec<u64>)> = groups
        .iter()
        .take(MAX_SERIES)
        .map(|(k, v)| ((*k).clone(), (*v).clone()))
        .collect();
    if groups.len() > MAX_SERIES {
        let rest: Vec<u64> = groups[MAX_SERIES..]
            .iter()
            .flat_map(|(_, v)| v.iter().copied())
            .collect();
        series.push((
            format!("other ({} channels)", groups.len() - MAX_SERIES),
            rest,
        ));
    }
    for (_, v) in &mut series {
        v.sort_unstable();
    }
    let max = series
        .iter()
        .filter_map(|(_, v)| v.last())
        .copied()
        .max()
        .unwrap_or(0);
    let svg = svg(title, |root| {
        if series.is_empty() {
            return empty(root, "no message was delivered");
        }
        let x_max = ms(max).max(1e-3) * 1.02;
        let mut c = ChartBuilder::on(root)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(0f64..x_max, 0f64..1f64)
            .map_err(|e| e.to_string())?;
        c.configure_mesh()
            .x_desc("latency, publish to delivery (ms)")
            .y_desc("fraction of deliveries ≤ x")
            .draw()
            .map_err(|e| e.to_string())?;
        for (i, (name, v)) in series.iter().enumerate() {
            let colour = Palette99::pick(i).to_rgba();
            let n = v.len() as f64;
            // The empirical CDF, at most ~400 points per line.
            let stride = (v.len() / 400).max(1);
            let pts: Vec<(f64, f64)> = v
                .iter()
                .enumerate()
                .filter(|(k, _)| k % stride == 0 || *k + 1 == v.len())
                .map(|(k, &x)| (ms(x), (k + 1) as f64 / n))
                .collect();
            labelled_line(
                &mut c,
                pts,
                colour,
                format!("{name} ({} deliveries)", v.len()),
            )?;
        }
        legend(&mut c, SeriesLabelPosition::LowerRight)
    })?;
    Ok(Plot {
        title: title.into(),
        caption: "Empirical distribution function of the latency (delivery time minus \
                  publication time, virtual time) of every delivered copy, per channel. \
                  Channels are grouped by name: the environment prefix is dropped and a \
                  level that names an agent or microgrid becomes +. The largest groups \
                  are drawn; the rest are pooled as other."
            .into(),
        svg,
    })
}

/// Bucket index of time `t` in a run ending at `end`.
fn bucket(t: u64, end: u64) -> usize {
    if end == 0 {
        return 0;
    }
    ((u128::from(t) * BUCKETS as u128 / (u128::from(end) + 1)) as usize).min(BUCKETS - 1)
}

fn age_plot(g: &Gathered) -> Result<Plot, ReportError> {
    let title = "Age of information over time";
    // At each bucket's end: per (receiver, channel), the time since the
    // publication of the newest message it has received; mean and max.
    let mut newest: BTreeMap<(u32, u32), u64> = BTreeMap::new();
    let (unit, unit_name) = time_unit(g.end_ns);
    let mut mean = Vec::new();
    let mut max = Vec::new();
    let end = g.end_ns;
    let mut i = 0;
    for b in 0..BUCKETS {
        let t = ((u128::from(end) + 1) * (b as u128 + 1) / BUCKETS as u128) as u64;
        while i < g.deliveries.len() && g.deliveries[i].0 < t {
            let (_, rx, ch, sent) = g.deliveries[i];
            let e = newest.entry((rx, ch)).or_insert(sent);
            *e = (*e).max(sent);
            i += 1;
        }
        if newest.is_empty() {
            continue;
        }
        let ages: Vec<u64> = newest.values().map(|&s| t.saturating_sub(s)).collect();
        let m = ages.iter().map(|&a| a as f64).sum::<f64>() / ages.len() as f64;
        mean.push((t as f64 / unit, m / 1e6));
        max.push((t as f64 / unit, ms(*ages.iter().max().unwrap_or(&0))));
    }
    let y_max = max.iter().map(|p| p.1).fold(0.0, f64::max).max(1e-3) * 1.05;
    let svg = svg(title, |root| {
        if mean.is_empty() {
            return empty(root, "no message was delivered");
        }
        let mut c = ChartBuilder::on(root)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(0f64..(end as f64 / unit).max(1e-3), 0f64..y_max)
            .map_err(|e| e.to_string())?;
        c.configure_mesh()
            .x_desc(format!("virtual time ({unit_name})"))
            .y_desc("age of information (ms)")
            .draw()
            .map_err(|e| e.to_string())?;
        for (name, pts, colour) in [("mean", &mean, BLUE), ("max", &max, RED)] {
            labelled_line(&mut c, pts.iter().copied(), colour.to_rgba(), name.into())?;
        }
        legend(&mut c, SeriesLabelPosition::MiddleRight)
    })?;
    Ok(Plot {
        title: title.into(),
        caption: format!(
            "At the end of each of {BUCKETS} equal time buckets: for every (receiver, \
             channel) pair that has received a message, the time since the newest message \
             it has received was published; the mean and the maximum over the pairs."
        ),
        svg,
    })
}

/// Per grid step `k`: the devices whose state update for step `k` had not
/// reached the environment by `k·step + deadline` (the environment's
/// `grid.deadline_misses`), for every step whose deadline the run reached.
fn misses_per_step(g: &Gathered, step: SimDuration, deadline: SimDuration) -> Vec<u64> {
    let (s, d) = (step.as_nanos(), deadline.as_nanos());
    let steps = if g.end_ns >= d {
        (g.end_ns - d) / s + 1
    } else {
        0
    };
    let steps = steps.min(1 << 20) as usize;
    let mut on_time: std::collections::BTreeSet<(u64, u32)> = Default::default();
    for &(sender, sent, time) in &g.updates {
        let k = sent / s;
        if time <= k * s + d {
            on_time.insert((k, sender));
        }
    }
    let mut per = vec![g.devices.len() as u64; steps];
    for &(k, _) in &on_time {
        if let Some(m) = per.get_mut(k as usize) {
            *m -= 1;
        }
    }
    per
}

fn late_plot(
    g: &Gathered,
    timing: Option<(SimDuration, SimDuration)>,
) -> Result<Plot, ReportError> {
    let title = "Deadline misses per step";
    let late = g.late.len();
    let (bins, unit, caption): (Vec<u64>, String, String) = match (timing, g.state) {
        (Some((step, deadline)), Some(_)) => {
            let per = misses_per_step(g, step, deadline);
            let total: u64 = per.iter().sum();
            (
                per,
                format!("grid step ({step} each)"),
                format!(
                    "Per grid step k, the devices whose state update for step k had not \
                     reached the environment by k·step + deadline ({deadline}): the \
                     environment's deadline misses (a state update's step is its \
                     publication time divided by the step), {total} in all. Late \
                     records (updates that arrived after their deadline): {late}."
                ),
            )
        }
        _ => {
            let mut counts = vec![0u64; BUCKETS];
            for &(t, _) in &g.late {
                counts[bucket(t, g.end_ns)] += 1;
            }
            (
                counts,
                format!(
                    "time bucket ({} each)",
                    SimDuration(g.end_ns / BUCKETS as u64 + 1)
                ),
                format!(
                    "Late records (messages that reached their receiver after its \
                     deadline) in each of {BUCKETS} equal time buckets (the run has no \
                     grid environment, so no steps), {late} in all."
                ),
            )
        }
    };
    let y_max = bins.iter().copied().max().unwrap_or(0).max(1);
    let n = bins.len().max(1) as f64;
    let svg = svg(title, |root| {
        let mut c = ChartBuilder::on(root)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(0f64..n, 0f64..(y_max as f64 * 1.1))
            .map_err(|e| e.to_string())?;
        c.configure_mesh()
            .disable_x_mesh()
            .x_desc(unit.as_str())
            .y_desc("misses")
            .draw()
            .map_err(|e| e.to_string())?;
        let style = RED.mix(0.6).filled();
        c.draw_series(
            bins.iter()
                .enumerate()
                .filter(|(_, c)| **c > 0)
                .map(|(k, &c)| {
                    Rectangle::new([(k as f64, 0.0), (k as f64 + 1.0, c as f64)], style)
                }),
        )
        .map_err(|e| e.to_string())?;
        Ok(())
    })?;
    Ok(Plot {
        title: title.into(),
        caption,
        svg,
    })
}

fn drops_plot(g: &Gathered) -> Result<Plot, ReportError> {
    let title = "Drops by reason over time";
    let mut by: BTreeMap<u16, Vec<u64>> = BTreeMap::new();
    for &(t, code) in &g.drops {
        by.entry(code).or_insert_with(|| vec![0; BUCKETS])[bucket(t, g.end_ns)] += 1;
    }
    let y_max = by
        .values()
        .flat_map(|v| v.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1);
    let width = g.end_ns / BUCKETS as u64 + 1;
    let (unit, unit_name) = time_unit(g.end_ns);
    let svg = svg(title, |root| {
        if by.is_empty() {
            return empty(root, "nothing was dropped");
        }
        let mut c = ChartBuilder::on(root)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(
                0f64..(g.end_ns as f64 / unit).max(1e-3),
                0f64..(y_max as f64 * 1.1),
            )
            .map_err(|e| e.to_string())?;
        c.configure_mesh()
            .x_desc(format!(
                "virtual time ({unit_name}), buckets of {}",
                SimDuration(width)
            ))
            .y_desc("drops per bucket")
            .draw()
            .map_err(|e| e.to_string())?;
        for (i, (code, counts)) in by.iter().enumerate() {
            let colour = Palette99::pick(i).to_rgba();
            let name = Reason::ALL
                .iter()
                .find(|r| **r as u16 == *code)
                .map_or_else(|| format!("reason {code}"), |r| r.name().to_string());
            let pts: Vec<(f64, f64)> = counts
                .iter()
                .enumerate()
                .map(|(b, &c)| ((width * b as u64 + width / 2) as f64 / unit, c as f64))
                .collect();
            let total: u64 = counts.iter().sum();
            labelled_line(&mut c, pts, colour, format!("{name} ({total})"))?;
        }
        legend(&mut c, SeriesLabelPosition::MiddleRight)
    })?;
    Ok(Plot {
        title: title.into(),
        caption: format!(
            "drop records per reason (docs/summary.md) in each of {BUCKETS} equal time \
             buckets; the legend gives each reason's total."
        ),
        svg,
    })
}

// ---------------------------------------------------------------------------
// From a batch's results CSV

/// The outcomes plotted from a results CSV: the batch's headline columns
/// and `latency_p99_ns`, where present.
fn outcome_columns(header: &[String]) -> Vec<usize> {
    let mut cols: Vec<usize> = HEADLINE
        .iter()
        .chain(["latency_p99_ns"].iter())
        .filter_map(|h| header.iter().position(|c| c == h))
        .collect();
    cols.sort_unstable();
    cols.dedup();
    cols
}

/// One point of a batch plot: a variant's label, its x value if every
/// label is a number, and the running statistics of each outcome.
struct Variant {
    label: String,
    x: Option<f64>,
    stats: Vec<Running>,
}

/// Builds the report of a batch's results CSV (`busbar batch --out`).
pub fn from_batch_csv<R: Read>(input: R) -> Result<Report, ReportError> {
    let mut rd = csv::ReaderBuilder::new().from_reader(input);
    let header: Vec<String> = rd
        .headers()
        .map_err(|e| ReportError::Csv(e.to_string()))?
        .iter()
        .map(str::to_string)
        .collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|c| c == name)
            .ok_or_else(|| ReportError::Csv(format!("no `{name}` column: not a busbar batch CSV")))
    };
    let (scenario, variant, env, status) = (
        col("scenario")?,
        col("variant")?,
        col("env")?,
        col("status")?,
    );
    if env <= variant {
        return Err(ReportError::Csv("`env` comes before `variant`".into()));
    }
    let sweeps: Vec<String> = header[variant + 1..env].to_vec();
    let outcomes = outcome_columns(&header);
    if outcomes.is_empty() {
        return Err(ReportError::Csv("no outcome column to plot".into()));
    }
    let mut variants: BTreeMap<(String, u64), Variant> = BTreeMap::new();
    let (mut rows, mut failed) = (0u64, 0u64);
    for rec in rd.records() {
        let rec = rec.map_err(|e| ReportError::Csv(e.to_string()))?;
        rows += 1;
        if rec.get(status) != Some("ok") {
            failed += 1;
            continue;
        }
        let v: u64 = rec
            .get(variant)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| ReportError::Csv(format!("row {rows}: bad `variant`")))?;
        let scen = rec.get(scenario).unwrap_or("").to_string();
        let values: Vec<&str> = (variant + 1..env)
            .map(|i| rec.get(i).unwrap_or(""))
            .collect();
        let e = variants
            .entry((scen.clone(), v))
            .or_insert_with(|| Variant {
                label: if values.is_empty() {
                    scen.clone()
                } else {
                    sweeps
                        .iter()
                        .zip(&values)
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                x: (values.len() == 1)
                    .then(|| values[0].parse::<f64>().ok())
                    .flatten(),
                stats: vec![Running::default(); outcomes.len()],
            });
        for (k, &c) in outcomes.iter().enumerate() {
            if let Some(x) = rec.get(c).and_then(|s| s.parse::<f64>().ok()) {
                e.stats[k].push(x);
            }
        }
    }
    if variants.is_empty() {
        return Err(ReportError::Csv("no successful run to plot".into()));
    }
    let variants: Vec<Variant> = variants.into_values().collect();
    let numeric = sweeps.len() == 1 && variants.iter().all(|v| v.x.is_some());
    let mut plots = Vec::new();
    for (k, &c) in outcomes.iter().enumerate() {
        let name = &header[c];
        if variants.iter().all(|v| v.stats[k].n == 0) {
            continue;
        }
        plots.push(batch_plot(name, &sweeps, &variants, k, numeric)?);
    }
    let facts = vec![
        ("runs".into(), rows.to_string()),
        ("runs not ok (left out)".into(), failed.to_string()),
        ("variants".into(), variants.len().to_string()),
        (
            "swept".into(),
            if sweeps.is_empty() {
                "nothing".into()
            } else {
                sweeps.join(", ")
            },
        ),
    ];
    Ok(Report {
        title: "busbar batch results".into(),
        facts,
        plots,
    })
}

fn batch_plot(
    name: &str,
    sweeps: &[String],
    variants: &[Variant],
    k: usize,
    numeric: bool,
) -> Result<Plot, ReportError> {
    let title = format!("{name} by variant");
    // (x, mean, half-width) per variant with data.
    let pts: Vec<(f64, f64, f64)> = variants
        .iter()
        .enumerate()
        .filter(|(_, v)| v.stats[k].n > 0)
        .map(|(i, v)| {
            let s = &v.stats[k];
            let hw = s.half_width();
            (
                if numeric {
                    v.x.unwrap_or(i as f64)
                } else {
                    i as f64
                },
                s.mean,
                if hw.is_finite() { hw } else { 0.0 },
            )
        })
        .collect();
    let lo = pts.iter().map(|p| p.1 - p.2).fold(f64::INFINITY, f64::min);
    let hi = pts
        .iter()
        .map(|p| p.1 + p.2)
        .fold(f64::NEG_INFINITY, f64::max);
    let pad = ((hi - lo).abs() * 0.1).max(hi.abs() * 0.05).max(1e-9);
    let (y0, y1) = (lo - pad, hi + pad);
    let (x0, x1) = if numeric {
        let a = pts.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
        let b = pts.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
        let w = ((b - a) * 0.08).max(a.abs() * 0.05).max(1e-9);
        (a - w, b + w)
    } else {
        (-0.5, variants.len() as f64 - 0.5)
    };
    let labels: Vec<String> = variants.iter().map(|v| v.label.clone()).collect();
    let x_desc = if numeric {
        sweeps[0].clone()
    } else {
        "variant".to_string()
    };
    let svg = svg(&title, |root| {
        let mut c = ChartBuilder::on(root)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| e.to_string())?;
        let fmt = |x: &f64| -> String {
            if numeric {
                tick(*x)
            } else {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < labels.len() {
                    format!("#{}", i as usize)
                } else {
                    String::new()
                }
            }
        };
        let mut mesh = c.configure_mesh();
        let yfmt = |y: &f64| tick(*y);
        mesh.x_desc(x_desc.as_str())
            .y_desc(format!("{name}: mean ± 95 % CI"))
            .x_label_formatter(&fmt)
            .y_label_formatter(&yfmt);
        if !numeric {
            mesh.x_labels(labels.len().min(20) + 1);
        }
        mesh.draw().map_err(|e| e.to_string())?;
        c.draw_series(
            pts.iter()
                .map(|&(x, m, h)| ErrorBar::new_vertical(x, m - h, m, m + h, BLUE.filled(), 8)),
        )
        .map_err(|e| e.to_string())?;
        if pts.len() > 1 {
            c.draw_series(LineSeries::new(
                pts.iter().map(|p| (p.0, p.1)),
                BLUE.mix(0.5),
            ))
            .map_err(|e| e.to_string())?;
        }
        Ok(())
    })?;
    let legend = if numeric {
        String::new()
    } else {
        let items: Vec<String> = variants
            .iter()
            .enumerate()
            .map(|(i, v)| format!("#{i}: {}", v.label))
            .collect();
        format!(" Variants: {}.", items.join("; "))
    };
    Ok(Plot {
        title,
        caption: format!(
            "The mean of {name} over the environments of each variant, with the 95 % \
             confidence interval of the mean (Student's t; none with one environment).{legend}"
        ),
        svg,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_short() {
        assert_eq!(tick(0.12000000000000001), "0.12");
        assert_eq!(tick(0.19999999999999998), "0.2");
        assert_eq!(tick(3.0), "3");
        assert_eq!(tick(-0.0), "0");
        assert_eq!(tick(1e-7), "0");
    }

    #[test]
    fn channel_groups_collapse_agent_levels() {
        let agents: std::collections::BTreeSet<&str> = ["mg1", "mg2", "env"].into();
        assert_eq!(
            channel_group("env0/agent/mg1/device_actions", "env0/", &agents),
            "agent/+/device_actions"
        );
        assert_eq!(
            channel_group("env0/state_updates", "env0/", &agents),
            "state_updates"
        );
    }

    #[test]
    fn html_escapes_text_and_keeps_svg() {
        let r = Report {
            title: "a<b>&\"c\"".into(),
            facts: vec![("k<".into(), "v>".into())],
            plots: vec![Plot {
                title: "t".into(),
                caption: "<script>".into(),
                svg: "<svg></svg>".into(),
            }],
        };
        let h = r.to_html();
        assert!(h.contains("a&lt;b&gt;&amp;&quot;c&quot;"));
        assert!(h.contains("&lt;script&gt;") && !h.contains("<script>"));
        assert_eq!(h.matches("<svg").count(), 1);
    }

    #[test]
    fn the_grid_timing_comes_from_the_scenario() {
        let ms = SimDuration::from_millis;
        assert_eq!(
            grid_timing("[grid]\nstep = \"250ms\"\ndeadline = \"200ms\"\n"),
            Some((ms(250), ms(200)))
        );
        assert_eq!(grid_timing("[grid]\n"), Some((ms(1000), ms(1000))));
        assert_eq!(grid_timing("[simulation]\nname = \"x\"\n"), None);
    }
}
