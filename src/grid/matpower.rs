//! Distribution feeders from MATPOWER case files (`.m`, case format
//! version 2): the literal data of `mpc.baseMVA`, `mpc.bus`, `mpc.gen` and
//! `mpc.branch`, turned into a radial [`Feeder`] rooted at the reference
//! bus, with the case's loads.
//!
//! # Why MATPOWER
//!
//! The MATPOWER case format is plain text with a fixed, documented column
//! layout (R. D. Zimmerman, C. E. Murillo-Sánchez, R. J. Thomas,
//! "MATPOWER: Steady-State Operations, Planning, and Analysis Tools for
//! Power Systems Research and Education", IEEE Trans. Power Systems 26(1),
//! 2011, Appendix B), the usual way the IEEE and Baran–Wu distribution
//! test feeders are passed around, and pandapower reads it too
//! (`pandapower.converter.from_mpc`). pandapower's own JSON is a dump of
//! its internal tables whose layout follows pandapower's version, so it is
//! a poorer exchange format for a tool that is not pandapower.
//!
//! # What is read, and what is refused
//!
//! Only literal data: `mpc.version = '2';`, `mpc.baseMVA = N;` and the
//! matrices `mpc.X = [ ... ];` (rows end with `;` or a new line, entries
//! are separated by spaces, tabs or commas; `%` starts a comment; `...`
//! continues a line). Other matrices (`gencost`, ...) and cell arrays
//! (`mpc.bus_name = { ... };`) are skipped. Any other statement is MATLAB
//! code, which busbar does not run, so it is refused with its line: some
//! distributed cases (MATPOWER's own `case33bw.m`, for one) give impedances
//! in ohms and loads in kW and convert them in code at the end of the file.
//! Such a file must be converted to per unit data first, e.g. by loading it
//! in MATPOWER and saving it with `savecase`.
//!
//! The power flow models a balanced, radial network without shunts or
//! transformer taps, so the case must have exactly one reference bus
//! (type 3) and otherwise PQ buses (type 1; type 4, isolated, is refused
//! too); no bus shunt (`Gs`, `Bs`); in-service branches with no charging
//! (`b`), no tap ratio other than 0 or 1 and no phase shift, that form a
//! tree over all buses; generators only at the reference bus. Out-of-service
//! branches (`status` 0, such as the tie switches of a reconfiguration
//! case) are skipped. Each error names the file, the line and the column.
//!
//! # Units
//!
//! As MATPOWER: `Pd`, `Qd` in MW and MVAr (loads, positive when consumed),
//! `r`, `x` in per unit on `baseMVA`, `rateA` in MVA (0 means no rating),
//! `Vm`, `Vg` in per unit. The slack voltage is the reference bus's
//! generator set point `Vg` if it has an in-service generator, else its
//! `Vm`.

use std::fmt;
use std::path::Path;

use crate::grid::feeder::{Feeder, Line};

/// Columns MATPOWER's bus matrix must have (version 2).
const BUS_COLS: usize = 13;
/// Columns of the generator matrix.
const GEN_COLS: usize = 10;
/// Columns of the branch matrix.
const BRANCH_COLS: usize = 11;

/// A feeder read from a MATPOWER case.
#[derive(Clone, Debug, PartialEq)]
pub struct FeederCase {
    /// The radial feeder: bus 0 is the case's reference bus, the other
    /// buses in the order of the case's bus matrix, lines pointing away from
    /// bus 0 in the order of its branch matrix. Lines without a rating
    /// (`rateA` 0) get `default_rating_mva`.
    pub feeder: Feeder,
    /// The case's bus number (`bus_i`) of each feeder bus.
    pub bus_numbers: Vec<u64>,
    /// The case's load at each feeder bus, `(Pd MW, Qd MVAr)`, positive
    /// when consumed.
    pub loads: Vec<(f64, f64)>,
    /// The case's branch row (counted from 1 among the matrix's rows) of
    /// each feeder line.
    pub branch_rows: Vec<usize>,
    /// Base voltage of the reference bus, kV (information only).
    pub base_kv: f64,
}

impl FeederCase {
    /// The feeder bus of case bus number `n`.
    pub fn bus_index(&self, n: u64) -> Option<usize> {
        self.bus_numbers.iter().position(|&b| b == n)
    }
}

/// Why a case file could not be read as a radial feeder.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct CaseError {
    /// The file, as named.
    pub file: String,
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
    /// What is wrong, and what to do.
    pub message: String,
}

/// Reads the case file at `path` (see the module docs).
pub fn load_case(path: &Path, default_rating_mva: f64) -> Result<FeederCase, CaseError> {
    let shown = path.display().to_string();
    let text = crate::files::read_text(path, "feeder case", crate::files::MAX_SCENARIO_BYTES)
        .map_err(|e| CaseError {
            file: shown.clone(),
            line: 1,
            column: 1,
            message: e.to_string(),
        })?;
    parse_case(&text, &shown, default_rating_mva)
}

/// Reads a case from its text; `file` names it in errors.
pub fn parse_case(
    text: &str,
    file: &str,
    default_rating_mva: f64,
) -> Result<FeederCase, CaseError> {
    let data = Data::parse(text).map_err(|(at, message)| error(text, file, at, message))?;
    data.feeder(default_rating_mva)
        .map_err(|(at, message)| error(text, file, at, message))
}

fn error(text: &str, file: &str, at: usize, message: String) -> CaseError {
    let at = at.min(text.len());
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    CaseError {
        file: file.to_string(),
        line,
        column,
        message,
    }
}

/// A number of a matrix, with where it was written.
#[derive(Clone, Copy, Debug)]
struct Cell {
    value: f64,
    at: usize,
}

/// A matrix: rows of cells, and where it starts.
#[derive(Clone, Debug, Default)]
struct Matrix {
    rows: Vec<Vec<Cell>>,
    at: usize,
}

/// The literal data of a case file.
#[derive(Debug, Default)]
struct Data {
    base_mva: Option<Cell>,
    bus: Option<Matrix>,
    gen_: Option<Matrix>,
    branch: Option<Matrix>,
}

type Failure = (usize, String);

/// A cursor over the text with the lexical rules of the case format.
struct Lexer<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    /// Skips spaces, tabs, comments and `...` continuations; stops at a
    /// new line if `newlines` is false.
    fn skip(&mut self, newlines: bool) {
        while let Some(c) = self.peek() {
            match c {
                b' ' | b'\t' | b'\r' => self.pos += 1,
                b'\n' if newlines => self.pos += 1,
                b'%' => self.skip_line(),
                b'.' if self.s[self.pos..].starts_with(b"...") => {
                    self.skip_line();
                    if self.peek() == Some(b'\n') {
                        self.pos += 1;
                    }
                }
                _ => return,
            }
        }
    }

    fn skip_line(&mut self) {
        while let Some(c) = self.peek() {
            if c == b'\n' {
                return;
            }
            self.pos += 1;
        }
    }

    /// An identifier path such as `mpc.bus` or `function`.
    fn word(&mut self) -> &str {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == b'_' || c == b'.' {
                self.pos += 1;
            } else {
                break;
            }
        }
        std::str::from_utf8(&self.s[start..self.pos]).unwrap_or("")
    }

    fn expect(&mut self, c: u8, what: &str) -> Result<(), Failure> {
        self.skip(false);
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err((self.pos, format!("expected {what}")))
        }
    }

    /// A number as MATLAB writes it (`-1.5e-3`, `Inf`, `-Inf`).
    fn number(&mut self) -> Result<Cell, Failure> {
        let at = self.pos;
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'+') {
                // A continuation `...` ends the number.
                if c == b'.' && self.s[self.pos..].starts_with(b"...") {
                    break;
                }
                self.pos += 1;
            } else {
                break;
            }
        }
        let t = std::str::from_utf8(&self.s[at..self.pos]).unwrap_or("");
        let value = match t {
            "Inf" | "inf" => f64::INFINITY,
            "-Inf" | "-inf" => f64::NEG_INFINITY,
            _ => t
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| (at, format!("{t:?} is not a number")))?,
        };
        Ok(Cell { value, at })
    }

    /// The rest of a statement `;`-terminated or to the end of the line.
    fn end_statement(&mut self) -> Result<(), Failure> {
        self.skip(false);
        match self.peek() {
            Some(b';') => {
                self.pos += 1;
                Ok(())
            }
            None | Some(b'\n') => Ok(()),
            Some(_) => Err((self.pos, "expected ; or the end of the line".into())),
        }
    }

    /// `[ rows ]`, after the `[`.
    fn matrix(&mut self, at: usize) -> Result<Matrix, Failure> {
        let mut m = Matrix {
            rows: Vec::new(),
            at,
        };
        let mut row: Vec<Cell> = Vec::new();
        loop {
            self.skip(false);
            match self.peek() {
                None => return Err((at, "this matrix has no closing ]".into())),
                Some(b']') => {
                    self.pos += 1;
                    if !row.is_empty() {
                        m.rows.push(row);
                    }
                    return Ok(m);
                }
                Some(b';' | b'\n') => {
                    self.pos += 1;
                    if !row.is_empty() {
                        m.rows.push(std::mem::take(&mut row));
                    }
                }
                Some(b',') => self.pos += 1,
                Some(_) => row.push(self.number()?),
            }
        }
    }

    /// Skips `{ ... }` (a cell array), after the `{`.
    fn skip_cells(&mut self, at: usize) -> Result<(), Failure> {
        let mut quoted = false;
        while let Some(c) = self.peek() {
            self.pos += 1;
            match c {
                b'\'' => quoted = !quoted,
                b'}' if !quoted => return Ok(()),
                b'%' if !quoted => self.skip_line(),
                _ => {}
            }
        }
        Err((at, "this cell array has no closing }".into()))
    }
}

impl Data {
    fn parse(text: &str) -> Result<Data, Failure> {
        let mut lx = Lexer {
            s: text.as_bytes(),
            pos: 0,
        };
        let mut d = Data::default();
        loop {
            lx.skip(true);
            if lx.peek().is_none() {
                return Ok(d);
            }
            if lx.peek() == Some(b';') {
                lx.pos += 1;
                continue;
            }
            let at = lx.pos;
            let word = lx.word().to_string();
            if word == "function" {
                // `function mpc = name`: the header.
                lx.skip_line();
                continue;
            }
            let code = |lx: &mut Lexer<'_>| {
                let start = at;
                lx.skip_line();
                let stmt = String::from_utf8_lossy(&lx.s[start..lx.pos]);
                Err((
                    at,
                    format!(
                        "`{}` is MATLAB code, which busbar does not run: it reads only the \
                         literal data mpc.version, mpc.baseMVA, mpc.bus, mpc.gen and \
                         mpc.branch. Convert the case to per unit data first (load it in \
                         MATPOWER and save it with savecase)",
                        stmt.trim()
                    ),
                ))
            };
            if !word.starts_with("mpc.") || word.matches('.').count() != 1 {
                return code(&mut lx);
            }
            lx.skip(false);
            if lx.peek() != Some(b'=') {
                return code(&mut lx);
            }
            lx.pos += 1;
            lx.skip(false);
            let field = &word[4..];
            match lx.peek() {
                Some(b'[') => {
                    let m_at = lx.pos;
                    lx.pos += 1;
                    let m = lx.matrix(m_at)?;
                    lx.end_statement()?;
                    match field {
                        "bus" => d.bus = Some(m),
                        "gen" => d.gen_ = Some(m),
                        "branch" => d.branch = Some(m),
                        "baseMVA" => return Err((at, "mpc.baseMVA must be a number".into())),
                        _ => {}
                    }
                }
                Some(b'{') => {
                    let c_at = lx.pos;
                    lx.pos += 1;
                    lx.skip_cells(c_at)?;
                    lx.end_statement()?;
                }
                Some(b'\'') => {
                    let s_at = lx.pos;
                    lx.pos += 1;
                    let start = lx.pos;
                    while lx.peek().is_some_and(|c| c != b'\'' && c != b'\n') {
                        lx.pos += 1;
                    }
                    let value = String::from_utf8_lossy(&lx.s[start..lx.pos]).into_owned();
                    lx.expect(b'\'', "the closing ' of a string")?;
                    lx.end_statement()?;
                    if field == "version" && value != "2" {
                        return Err((
                            s_at,
                            format!(
                                "case format version {value:?}: busbar reads version 2 \
                                 (convert it with MATPOWER's loadcase and savecase)"
                            ),
                        ));
                    }
                }
                _ => {
                    let n = lx.number()?;
                    lx.end_statement()?;
                    if field == "baseMVA" {
                        d.base_mva = Some(n);
                    }
                }
            }
        }
    }

    fn feeder(&self, default_rating_mva: f64) -> Result<FeederCase, Failure> {
        let missing = |what: &str| (0, format!("the case has no {what}"));
        let base = self.base_mva.ok_or_else(|| missing("mpc.baseMVA"))?;
        if base.value <= 0.0 {
            return Err((base.at, "mpc.baseMVA must be > 0".into()));
        }
        let bus = self.bus.as_ref().ok_or_else(|| missing("mpc.bus"))?;
        let branch = self.branch.as_ref().ok_or_else(|| missing("mpc.branch"))?;
        let empty = Matrix::default();
        let gens = self.gen_.as_ref().unwrap_or(&empty);
        check_cols(bus, BUS_COLS, "mpc.bus")?;
        check_cols(gens, GEN_COLS, "mpc.gen")?;
        check_cols(branch, BRANCH_COLS, "mpc.branch")?;
        if bus.rows.is_empty() {
            return Err((bus.at, "mpc.bus has no rows".into()));
        }

        // Buses: the reference first, then the others in file order.
        let mut numbers: Vec<u64> = Vec::with_capacity(bus.rows.len());
        let mut slack: Option<usize> = None;
        for (i, row) in bus.rows.iter().enumerate() {
            let n = bus_number(row[0])?;
            if numbers.contains(&n) {
                return Err((row[0].at, format!("bus {n} is listed twice")));
            }
            numbers.push(n);
            match row[1].value as i64 {
                3 if slack.is_some() => {
                    return Err((
                        row[1].at,
                        format!("bus {n} is a second reference bus (type 3); a feeder has one"),
                    ));
                }
                3 => slack = Some(i),
                1 => {}
                t => {
                    return Err((
                        row[1].at,
                        format!(
                            "bus {n} has type {t}; busbar's radial power flow takes one \
                             reference bus (3) and PQ buses (1)"
                        ),
                    ));
                }
            }
            for (col, what) in [(4, "Gs"), (5, "Bs")] {
                if row[col].value != 0.0 {
                    return Err((
                        row[col].at,
                        format!("bus {n} has a shunt ({what}); busbar's power flow models none"),
                    ));
                }
            }
        }
        let slack = slack.ok_or((bus.at, "the case has no reference bus (type 3)".into()))?;
        let mut order: Vec<usize> = vec![slack];
        order.extend((0..bus.rows.len()).filter(|&i| i != slack));
        let mut index_of = vec![0usize; bus.rows.len()];
        for (k, &i) in order.iter().enumerate() {
            index_of[i] = k;
        }
        let row_of = |n: u64, at: usize| {
            numbers
                .iter()
                .position(|&b| b == n)
                .ok_or((at, format!("bus {n} is not in mpc.bus")))
        };

        // The slack voltage: the reference bus's generator set point.
        let slack_row = &bus.rows[slack];
        let mut v_slack = slack_row[7].value;
        for g in &gens.rows {
            if g[7].value <= 0.0 {
                continue;
            }
            let n = bus_number(g[0])?;
            let r = row_of(n, g[0].at)?;
            if r != slack {
                return Err((
                    g[0].at,
                    format!(
                        "a generator at bus {n}, which is not the reference bus: busbar's \
                         feeder takes generation from its devices, not from the case"
                    ),
                ));
            }
            v_slack = g[5].value;
        }

        // Branches: in service, plain series impedances, oriented away
        // from the reference bus afterwards.
        let n = bus.rows.len();
        let mut edges: Vec<(usize, usize, usize)> = Vec::new(); // (row a, row b, branch row)
        for (k, row) in branch.rows.iter().enumerate() {
            if row[10].value == 0.0 {
                continue;
            }
            let a = row_of(bus_number(row[0])?, row[0].at)?;
            let b = row_of(bus_number(row[1])?, row[1].at)?;
            let name = format!("branch {} ({} - {})", k + 1, numbers[a], numbers[b]);
            if a == b {
                return Err((row[1].at, format!("{name} connects a bus to itself")));
            }
            if row[4].value != 0.0 {
                return Err((
                    row[4].at,
                    format!("{name} has line charging b; busbar's power flow models no shunts"),
                ));
            }
            let ratio = row[8].value;
            if ratio != 0.0 && ratio != 1.0 || row[9].value != 0.0 {
                return Err((
                    row[8].at,
                    format!("{name} is a transformer with a tap or phase shift; not modelled"),
                ));
            }
            for c in [2, 3] {
                if row[c].value < 0.0 {
                    return Err((row[c].at, format!("{name} has a negative r or x")));
                }
            }
            edges.push((a, b, k));
        }
        if edges.len() != n - 1 {
            return Err((
                branch.at,
                format!(
                    "{} branches in service for {n} buses: a radial feeder has exactly {} \
                     (open the tie switches: status 0)",
                    edges.len(),
                    n - 1
                ),
            ));
        }
        // Breadth-first from the slack, children in branch order.
        let mut seen = vec![false; n];
        seen[slack] = true;
        let mut queue = vec![slack];
        let mut lines: Vec<(usize, Line)> = Vec::with_capacity(n - 1);
        let mut head = 0;
        while head < queue.len() {
            let u = queue[head];
            head += 1;
            for &(a, b, k) in &edges {
                let v = if a == u {
                    b
                } else if b == u {
                    a
                } else {
                    continue;
                };
                if seen[v] {
                    continue;
                }
                seen[v] = true;
                queue.push(v);
                let row = &branch.rows[k];
                let rate = row[5].value;
                lines.push((
                    k,
                    Line {
                        from: index_of[u],
                        to: index_of[v],
                        r_pu: row[2].value,
                        x_pu: row[3].value,
                        rating_mva: if rate > 0.0 { rate } else { default_rating_mva },
                    },
                ));
            }
        }
        if let Some(i) = (0..n).find(|&i| !seen[i]) {
            return Err((
                bus.rows[i][0].at,
                format!(
                    "bus {} is not connected to the reference bus (the in-service branches \
                     form a loop elsewhere)",
                    numbers[i]
                ),
            ));
        }
        lines.sort_by_key(|(k, _)| *k);
        let feeder = Feeder {
            base_mva: base.value,
            v_slack_pu: v_slack,
            n_buses: n,
            lines: lines.iter().map(|(_, l)| l.clone()).collect(),
        };
        feeder
            .check()
            .map_err(|e| (branch.at, format!("the feeder is not valid: {e}")))?;
        Ok(FeederCase {
            bus_numbers: order.iter().map(|&i| numbers[i]).collect(),
            loads: order
                .iter()
                .map(|&i| (bus.rows[i][2].value, bus.rows[i][3].value))
                .collect(),
            branch_rows: lines.iter().map(|(k, _)| k + 1).collect(),
            base_kv: slack_row[9].value,
            feeder,
        })
    }
}

fn check_cols(m: &Matrix, cols: usize, name: &str) -> Result<(), Failure> {
    for row in &m.rows {
        if row.len() < cols {
            return Err((
                row.first().map_or(m.at, |c| c.at),
                format!(
                    "a row of {name} has {} columns; MATPOWER's case format version 2 has {cols}",
                    row.len()
                ),
            ));
        }
    }
    Ok(())
}

fn bus_number(c: Cell) -> Result<u64, Failure> {
    let v = c.value;
    if v >= 1.0 && v.fract() == 0.0 && v < 1e15 {
        Ok(v as u64)
    } else {
        Err((
            c.at,
            format!("{v} is not a bus number (a positive integer)"),
        ))
    }
}

impl fmt::Display for FeederCase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (p, q) = self
            .loads
            .iter()
            .fold((0.0, 0.0), |(p, q), (a, b)| (p + a, q + b));
        write!(
            f,
            "{} buses, {} lines, base {} MVA, {} kV, load {p:.4} MW + {q:.4} MVAr",
            self.feeder.n_buses,
            self.feeder.lines.len(),
            self.feeder.base_mva,
            self.base_kv
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = "function mpc = small
% a comment
mpc.version = '2';
mpc.baseMVA = 10;
mpc.bus = [
\t1\t1\t0.1\t0.05\t0\t0\t1\t1\t0\t12.66\t1\t1.1\t0.9;
\t2\t3\t0\t0\t0\t0\t1\t1\t0\t12.66\t1\t1.1\t0.9;
\t3\t1\t0.2, 0.1, 0 0 1 1 0 12.66 1 1.1 0.9 % trailing comment
\t4\t1\t0.3\t0.1\t0\t0\t1\t1\t0\t12.66\t1\t1.1\t0.9;
];
mpc.gen = [
\t2\t0\t0\t10\t-10\t1.02\t100\t1\t10\t0;
];
mpc.branch = [
\t1\t2\t0.01\t0.02\t0\t5\t0\t0\t0\t0\t1\t-360\t360;
\t3\t1\t0.03\t0.04\t0\t0\t0\t0\t1\t0\t1\t-360\t360;
\t2\t4\t0.05\t0.06\t0\t0\t0\t0\t0\t0\t1\t-360\t360;
\t3\t4\t0.5\t0.5\t0\t0\t0\t0\t0\t0\t0\t-360\t360;
];
mpc.gencost = [ 2 0 0 3 0 20 0 ];
mpc.bus_name = { 'a'; 'b}'; 'c'; 'd' };
";

    #[test]
    fn a_case_becomes_a_feeder_rooted_at_its_reference_bus() {
        let c = parse_case(SMALL, "small.m", 7.0).unwrap();
        assert_eq!(c.bus_numbers, vec![2, 1, 3, 4]);
        assert_eq!(c.feeder.base_mva, 10.0);
        assert_eq!(c.feeder.v_slack_pu, 1.02);
        assert_eq!(c.loads[1], (0.1, 0.05));
        assert_eq!(c.loads[2], (0.2, 0.1));
        // Branch 1 (1 - 2) points away from bus 2; branch 2 is drawn 3 -> 1
        // and becomes 1 -> 3; branch 4 is open.
        let ends: Vec<(usize, usize)> = c.feeder.lines.iter().map(|l| (l.from, l.to)).collect();
        assert_eq!(ends, vec![(0, 1), (1, 2), (0, 3)]);
        assert_eq!(c.branch_rows, vec![1, 2, 3]);
        assert_eq!(c.feeder.lines[0].rating_mva, 5.0);
        assert_eq!(c.feeder.lines[1].rating_mva, 7.0, "rateA 0: the default");
        assert_eq!(c.bus_index(4), Some(3));
        c.feeder.check().unwrap();
    }

    fn err(text: &str) -> CaseError {
        parse_case(text, "x.m", 5.0).unwrap_err()
    }

    #[test]
    fn code_is_refused_with_its_line() {
        let t = format!("{SMALL}Vbase = mpc.bus(1, BASE_KV) * 1e3;\n");
        let e = err(&t);
        assert_eq!(e.line, 22, "{e}");
        assert!(e.message.contains("MATLAB code"), "{e}");
        let t = format!("{SMALL}mpc.branch(:, [3 4]) = mpc.branch(:, [3 4]) / 16;\n");
        assert!(err(&t).message.contains("savecase"));
    }

    #[test]
    fn what_the_power_flow_cannot_model_is_refused_and_located() {
        let cases = [
            (
                "\t2\t3\t0\t0\t0\t0\t1",
                "\t2\t3\t0\t0\t0\t0.1\t1",
                "shunt (Bs)",
            ),
            ("\t4\t1\t0.3", "\t4\t2\t0.3", "type 2"),
            ("0.05\t0.06\t0\t0", "0.05\t0.06\t0.01\t0", "line charging"),
            (
                "0.03\t0.04\t0\t0\t0\t0\t1",
                "0.03\t0.04\t0\t0\t0\t0\t0.98",
                "tap",
            ),
            (
                "0.5\t0.5\t0\t0\t0\t0\t0\t0\t0\t-360",
                "0.5\t0.5\t0\t0\t0\t0\t0\t0\t1\t-360",
                "4 branches",
            ),
            ("mpc.version = '2'", "mpc.version = '1'", "version \"1\""),
            ("\t2\t3\t0", "\t2\t1\t0", "no reference bus"),
            ("\t2\t0\t0\t10", "\t3\t0\t0\t10", "not the reference bus"),
            ("\t2\t4\t0.05", "\t2\t9\t0.05", "bus 9 is not in mpc.bus"),
            (
                "12.66\t1\t1.1\t0.9;\n];",
                "12.66\t1\t1.1;\n];",
                "12 columns",
            ),
            ("0.01\t0.02", "0.01\tabc", "\"abc\" is not a number"),
        ];
        for (from, to, want) in cases {
            assert!(SMALL.contains(from), "{from}");
            let e = err(&SMALL.replacen(from, to, 1));
            assert!(e.message.contains(want), "{want}: {e}");
            assert!(e.line > 1 || want.contains("reference"), "{want}: {e}");
        }
        // A loop: close the tie and open branch 3 (2 - 4 stays connected
        // through 3 - 4 instead).
        let looped = SMALL
            .replace(
                "0.5\t0.5\t0\t0\t0\t0\t0\t0\t0\t-360",
                "0.5\t0.5\t0\t0\t0\t0\t0\t0\t1\t-360",
            )
            .replace(
                "0.05\t0.06\t0\t0\t0\t0\t0\t0\t1",
                "0.05\t0.06\t0\t0\t0\t0\t0\t0\t0",
            );
        parse_case(&looped, "x.m", 5.0).unwrap();
        assert!(err("mpc.baseMVA = 10;").message.contains("mpc.bus"));
        assert!(err("mpc.bus = [ 1 3 0").message.contains("closing ]"));
    }

    #[test]
    fn the_shipped_ieee33_feeder_matches_baran_and_wu() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/feeders/ieee33.m");
        let c = load_case(&path, 5.0).unwrap();
        assert_eq!(c.feeder.n_buses, 33);
        assert_eq!(c.feeder.lines.len(), 32);
        let (p, q) = c
            .loads
            .iter()
            .fold((0.0, 0.0), |(p, q), l| (p + l.0, q + l.1));
        // Baran & Wu (1989): 3715 kW and 2300 kVAr in all.
        assert!(
            (p - 3.715).abs() < 1e-9 && (q - 2.3).abs() < 1e-9,
            "{p} {q}"
        );
        // Line 1-2: 0.0922 + j0.0470 ohm on 12.66 kV, 10 MVA.
        let z_base = 12.66 * 12.66 / 10.0;
        let l = &c.feeder.lines[0];
        assert!(
            (l.r_pu * z_base - 0.0922).abs() < 1e-6,
            "{}",
            l.r_pu * z_base
        );
        assert!(
            (l.x_pu * z_base - 0.0470).abs() < 1e-6,
            "{}",
            l.x_pu * z_base
        );
        assert_eq!(c.base_kv, 12.66);
    }
}
