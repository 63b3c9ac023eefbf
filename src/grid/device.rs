//! Devices of the built-in grid scenario: their configuration, their
//! profiles and their physics.
//!
//! Three kinds of device sit on the buses of a microgrid's feeder:
//!
//! - **storage** ([`StorageSpec`], [`Storage`]): a battery with an energy
//!   capacity, a power limit, state-of-charge (SOC) limits and a one-way
//!   efficiency applied both when charging and when discharging;
//! - **PV** ([`PvSpec`], [`Pv`]): a solar plant whose output follows a
//!   [`Profile`] and can be curtailed by its grid agent;
//! - **load** ([`LoadSpec`], [`Load`]): a demand that follows a [`Profile`]
//!   at a fixed power factor.
//!
//! The specs are plain serde data read from the scenario file, e.g.
//!
//! ```toml
//! [[devices]]
//! type = "storage"
//! id = "bess1"
//! capacity_mwh = 2.0
//! p_max_mw = 0.5
//! soc_init = 0.5
//!
//! [[devices]]
//! type = "pv"
//! id = "pv1"
//! bus = 3
//! peak_mw = 0.8
//! profile = { kind = "solar", sunrise_h = 6.0, sunset_h = 18.0 }
//!
//! [[devices]]
//! type = "load"
//! id = "houses"
//! base_mw = 0.6
//! profile = { kind = "csv", path = "profiles/houses.csv", column = "p" }
//! ```
//!
//! The runtime types ([`Storage`], [`Pv`], [`Load`]) hold only physics:
//! they know nothing of messages or of the simulator, take time as an
//! argument and never draw random numbers. Profile noise (`noise`, the
//! fractional standard deviation of a multiplicative factor) is drawn by
//! the caller from the device's own RNG stream and applied to the profile
//! value before it is passed in.
//!
//! Signs: a device's power is what it delivers *to the grid*. Storage is
//! positive when discharging; PV is positive; [`Load::demand`] returns the
//! power the load *consumes* (positive), which the environment negates into
//! a net injection.
//!
//! All time-of-day functions take seconds since midnight and wrap every
//! 24 h, so the caller can pass `start_h * 3600 + seconds since the start`
//! without reducing it. Floating-point functions other than `+ - * /` and
//! `sqrt` come from `libm`, so profiles give the same bits on every
//! platform.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::tagged::tagged_enum;
use serde::{Deserialize, Serialize};

/// Seconds in a day: every profile wraps with this period.
pub const DAY_S: f64 = 86_400.0;

/// A validation failure: the offending key (as written in the scenario
/// file, nested keys joined with `.`) and what is wrong with it.
pub type SpecError = (String, String);

fn spec_err(key: &str, message: impl Into<String>) -> SpecError {
    (key.to_owned(), message.into())
}

/// Checks that `value` is a finite number in `[0, 1]`.
fn check_fraction(key: &str, value: f64) -> Result<(), SpecError> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(spec_err(
            key,
            format!("must be between 0 and 1, got {value}"),
        ))
    }
}

/// Checks that `value` is a finite number `> 0`.
fn check_positive(key: &str, value: f64) -> Result<(), SpecError> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(spec_err(
            key,
            format!("must be a positive number, got {value}"),
        ))
    }
}

fn check_id(id: &str) -> Result<(), SpecError> {
    if id.trim().is_empty() {
        Err(spec_err("id", "must not be empty"))
    } else {
        Ok(())
    }
}

/// Prefixes the key of a nested error, e.g. `sunrise_h` → `profile.sunrise_h`.
fn nested(prefix: &str, (key, message): SpecError) -> SpecError {
    (format!("{prefix}.{key}"), message)
}

/// `t` reduced to `[0, DAY_S)`; `NaN` stays `NaN`.
fn wrap_day_s(t_s: f64) -> f64 {
    let r = libm::fmod(t_s, DAY_S);
    let r = if r < 0.0 { r + DAY_S } else { r };
    // A tiny negative remainder plus a day can round up to a whole day.
    if r >= DAY_S { 0.0 } else { r }
}

/// `v` with negative values replaced by 0; `NaN` stays `NaN` so that a
/// missing profile is visible downstream instead of reading as zero.
fn non_negative(v: f64) -> f64 {
    if v < 0.0 { 0.0 } else { v }
}

/// `v` clamped to `[0, 1]`, with `NaN` read as 0.
fn clamp_fraction(v: f64) -> f64 {
    if v > 1.0 {
        1.0
    } else if v > 0.0 {
        v
    } else {
        0.0
    }
}

// ---------------------------------------------------------------------------
// Profiles
// ---------------------------------------------------------------------------

/// The built-in residential demand shape of [`Profile::Daily`], as a
/// fraction of the peak at each hour `0..24` (index = hour of day). Between
/// hours the profile interpolates linearly, and 23:00 → 24:00 interpolates
/// toward the 00:00 value.
///
/// | hour  | 0    | 1    | 2    | 3    | 4    | 5    | 6    | 7    |
/// |-------|------|------|------|------|------|------|------|------|
/// | value | 0.45 | 0.40 | 0.37 | 0.35 | 0.35 | 0.38 | 0.48 | 0.62 |
///
/// | hour  | 8    | 9    | 10   | 11   | 12   | 13   | 14   | 15   |
/// |-------|------|------|------|------|------|------|------|------|
/// | value | 0.65 | 0.58 | 0.55 | 0.55 | 0.57 | 0.55 | 0.53 | 0.55 |
///
/// | hour  | 16   | 17   | 18   | 19   | 20   | 21   | 22   | 23   |
/// |-------|------|------|------|------|------|------|------|------|
/// | value | 0.62 | 0.78 | 0.92 | 1.00 | 0.97 | 0.88 | 0.72 | 0.55 |
///
/// A night trough around 03:00–04:00, a morning bump at 08:00, a flat
/// midday and the evening peak at 19:00.
pub const DAILY_RESIDENTIAL: [f64; 24] = [
    0.45, 0.40, 0.37, 0.35, 0.35, 0.38, 0.48, 0.62, 0.65, 0.58, 0.55, 0.55, 0.57, 0.55, 0.53, 0.55,
    0.62, 0.78, 0.92, 1.00, 0.97, 0.88, 0.72, 0.55,
];

tagged_enum! {
    tag = "kind";
    /// How a PV plant's or a load's power varies over the day, as a multiplier
    /// of its `peak_mw` / `base_mw`.
    ///
    /// In TOML, an inline table tagged by `kind`:
    /// `{ kind = "solar", sunrise_h = 6.0, sunset_h = 18.0 }`,
    /// `{ kind = "constant", value = 0.8 }`, `{ kind = "daily" }`,
    /// `{ kind = "csv", path = "profiles/x.csv", column = "p" }`.
    #[derive(Clone, Debug, PartialEq)]
    pub enum Profile {
        /// A half-sine between sunrise and sunset, 1.0 at solar noon (midway),
        /// 0 at night: `sin(π (h - sunrise_h) / (sunset_h - sunrise_h))`.
        Solar {
            /// Hour of sunrise, `0 <= sunrise_h < sunset_h`. Default 6.0.
            #[serde(default = "default_sunrise_h")]
            sunrise_h: f64,
            /// Hour of sunset, `sunset_h <= 24`. Default 18.0.
            #[serde(default = "default_sunset_h")]
            sunset_h: f64,
        },
        /// The same multiplier all day.
        Constant {
            /// The multiplier, in `[0, 1]`.
            value: f64,
        },
        /// The built-in residential shape [`DAILY_RESIDENTIAL`], interpolated
        /// linearly between hourly points.
        Daily,
        /// A profile read from a CSV file (see [`parse_csv_profile`] for the
        /// format), interpolated linearly and wrapping every 24 h. Values may
        /// exceed 1. Call [`Profile::load`] before [`Profile::value_at`].
        Csv {
            /// The file; a relative path is relative to the directory given to
            /// [`Profile::load`] (the scenario file's directory).
            path: PathBuf,
            /// The name of the value column.
            column: String,
            /// The loaded points; `None` until [`Profile::load`] succeeds.
            #[serde(skip)]
            data: Option<CsvProfile>,
        },
    }
}

fn default_sunrise_h() -> f64 {
    6.0
}

fn default_sunset_h() -> f64 {
    18.0
}

impl Profile {
    /// The default PV profile: solar, sunrise 06:00, sunset 18:00.
    pub fn default_solar() -> Profile {
        Profile::Solar {
            sunrise_h: default_sunrise_h(),
            sunset_h: default_sunset_h(),
        }
    }

    /// A CSV profile whose points are already parsed.
    pub fn from_csv(
        path: impl Into<PathBuf>,
        column: impl Into<String>,
        data: CsvProfile,
    ) -> Profile {
        Profile::Csv {
            path: path.into(),
            column: column.into(),
            data: Some(data),
        }
    }

    /// The multiplier at `t_s` seconds since midnight (wrapped into one
    /// day): in `[0, 1]` for the built-in kinds, any non-negative value for
    /// CSV. A CSV profile that was never [`load`](Profile::load)ed yields
    /// `NaN`, which makes the power flow report non-convergence rather than
    /// pass silently as zero.
    pub fn value_at(&self, t_s: f64) -> f64 {
        let s = wrap_day_s(t_s);
        match self {
            Profile::Solar {
                sunrise_h,
                sunset_h,
            } => {
                let h = s / 3600.0;
                if h <= *sunrise_h || h >= *sunset_h {
                    return 0.0;
                }
                let phase = (h - sunrise_h) / (sunset_h - sunrise_h);
                clamp_fraction(libm::sin(core::f64::consts::PI * phase))
            }
            Profile::Constant { value } => clamp_fraction(*value),
            Profile::Daily => {
                let h = s / 3600.0;
                let floor = libm::floor(h);
                // `s < DAY_S` makes `floor` 0..=23; the `min` only guards NaN.
                let i = (floor as usize).min(23);
                let frac = h - floor;
                let a = DAILY_RESIDENTIAL[i];
                let b = DAILY_RESIDENTIAL[(i + 1) % 24];
                a + (b - a) * frac
            }
            Profile::Csv { data, .. } => match data {
                Some(d) => d.value_at(s),
                None => f64::NAN,
            },
        }
    }

    /// Checks the parameters; the key is relative to the profile table.
    pub fn validate(&self) -> Result<(), SpecError> {
        match self {
            Profile::Solar {
                sunrise_h,
                sunset_h,
            } => {
                if !(0.0..24.0).contains(sunrise_h) {
                    return Err(spec_err(
                        "sunrise_h",
                        format!("must be an hour in [0, 24), got {sunrise_h}"),
                    ));
                }
                if !(*sunset_h > *sunrise_h && *sunset_h <= 24.0) {
                    return Err(spec_err(
                        "sunset_h",
                        format!(
                            "must be after sunrise_h ({sunrise_h}) and at most 24, got {sunset_h}"
                        ),
                    ));
                }
                Ok(())
            }
            Profile::Constant { value } => check_fraction("value", *value),
            Profile::Daily => Ok(()),
            Profile::Csv { path, column, .. } => {
                if path.as_os_str().is_empty() {
                    return Err(spec_err("path", "must name a CSV file"));
                }
                if column.trim().is_empty() {
                    return Err(spec_err("column", "must name a column of the CSV file"));
                }
                if column == TIME_COLUMN {
                    return Err(spec_err(
                        "column",
                        format!("must name a value column, not the time column `{TIME_COLUMN}`"),
                    ));
                }
                Ok(())
            }
        }
    }

    /// Reads the CSV data of a [`Profile::Csv`] (again, if already loaded),
    /// resolving a relative path against `base_dir`. Does nothing for the
    /// other kinds.
    pub fn load(&mut self, base_dir: &Path) -> Result<(), ProfileError> {
        if let Profile::Csv { path, column, data } = self {
            let full = if path.is_absolute() {
                path.clone()
            } else {
                base_dir.join(&*path)
            };
            *data = Some(load_csv_profile(&full, column)?);
        }
        Ok(())
    }

    /// Whether [`Profile::value_at`] can be called: always, except for a
    /// CSV profile not yet loaded.
    pub fn is_ready(&self) -> bool {
        !matches!(self, Profile::Csv { data: None, .. })
    }
}

/// The name the first column of a CSV profile must have.
pub const TIME_COLUMN: &str = "time_s";

/// The points of a CSV profile: `(seconds since midnight, value)`, strictly
/// increasing in time, all within one day. Cheap to clone (shared).
#[derive(Clone, Debug, PartialEq)]
pub struct CsvProfile {
    points: Arc<[(f64, f64)]>,
}

impl CsvProfile {
    /// The points, in time order.
    pub fn points(&self) -> &[(f64, f64)] {
        &self.points
    }

    /// The value at `t_s` seconds since midnight (wrapped into one day),
    /// interpolated linearly; between the last point and the first point of
    /// the next day it interpolates across midnight.
    pub fn value_at(&self, t_s: f64) -> f64 {
        let pts = &*self.points;
        let s = wrap_day_s(t_s);
        let n = pts.len();
        if n == 1 {
            return pts[0].1;
        }
        // Number of points at or before `s`.
        let k = pts.partition_point(|&(t, _)| t <= s);
        let ((t_a, v_a), (t_b, v_b)) = if k == 0 {
            let (t_last, v_last) = pts[n - 1];
            ((t_last - DAY_S, v_last), pts[0])
        } else if k == n {
            let (t_first, v_first) = pts[0];
            (pts[n - 1], (t_first + DAY_S, v_first))
        } else {
            (pts[k - 1], pts[k])
        };
        // Times are strictly increasing within the day and the wrap
        // segment spans `t_first + DAY_S - t_last > 0`, so no division by 0.
        v_a + (v_b - v_a) * (s - t_a) / (t_b - t_a)
    }
}

/// Why a CSV profile could not be read. Every variant names the file, and
/// where it applies the line (1-based, counting the header as line 1).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// The file could not be opened or read. Check the path (relative paths
    /// are relative to the scenario file) and permissions.
    #[error("{}: cannot read the profile: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The file is not well-formed CSV (e.g. a row has a different number
    /// of fields than the header, or it is not UTF-8). Fix the line.
    #[error("{}:{line}: malformed CSV: {message}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The line.
        line: u64,
        /// What the CSV reader reported.
        message: String,
    },
    /// The file has no header or no data row. A profile needs a header
    /// `time_s,<column>` and at least one row.
    #[error("{}: the profile is empty; it needs a header `time_s,...` and at least one data row", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The first column is not `time_s`. Put the time, in seconds since
    /// midnight, in the first column and name it `time_s`.
    #[error("{}:1: the first column must be `time_s` (seconds since midnight), found `{found}`", path.display())]
    TimeColumn {
        /// The file.
        path: PathBuf,
        /// The first header found.
        found: String,
    },
    /// The requested value column is not in the header. Fix `column` in the
    /// scenario or the header of the file.
    #[error("{}:1: no column `{column}`; the header has: {available}", path.display())]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The column asked for.
        column: String,
        /// The header's columns, comma-separated.
        available: String,
    },
    /// A cell is not a number. Fix the cell.
    #[error("{}:{line}: column `{column}`: `{value}` is not a number", path.display())]
    NotANumber {
        /// The file.
        path: PathBuf,
        /// The line.
        line: u64,
        /// The column.
        column: String,
        /// The cell's text.
        value: String,
    },
    /// A time is not after the previous one. Sort the rows and remove
    /// duplicate times.
    #[error("{}:{line}: time_s {time_s} is not after the previous row's {previous_s}; times must be strictly increasing", path.display())]
    TimeNotIncreasing {
        /// The file.
        path: PathBuf,
        /// The line.
        line: u64,
        /// The time on this line.
        time_s: f64,
        /// The time on the previous row.
        previous_s: f64,
    },
    /// A time is outside one day. Times are seconds since midnight in
    /// `[0, 86400)`; the profile wraps, so 86400 is the same as 0.
    #[error("{}:{line}: time_s {time_s} is outside [0, 86400); the profile wraps every 24 h, so use 0 instead of 86400", path.display())]
    TimeOutOfRange {
        /// The file.
        path: PathBuf,
        /// The line.
        line: u64,
        /// The time found.
        time_s: f64,
    },
    /// A value is negative or not finite. Profile values are non-negative
    /// multipliers of the device's rated power.
    #[error("{}:{line}: column `{column}`: value {value} must be finite and >= 0", path.display())]
    BadValue {
        /// The file.
        path: PathBuf,
        /// The line.
        line: u64,
        /// The column.
        column: String,
        /// The value found.
        value: f64,
    },
}

/// Reads the CSV profile at `path`, taking values from `column`. See
/// [`parse_csv_profile`] for the format.
pub fn load_csv_profile(path: &Path, column: &str) -> Result<CsvProfile, ProfileError> {
    let file = std::fs::File::open(path).map_err(|source| ProfileError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse_csv_profile(io::BufReader::new(file), column, path)
}

/// Parses a CSV profile from `reader`; `path` only names the source in
/// errors.
///
/// Format: a header row whose first column is `time_s`, then one row per
/// point. `time_s` is seconds since midnight, in `[0, 86400)`, strictly
/// increasing; `column` holds the non-negative multiplier. Other columns
/// are ignored, fields are trimmed, blank lines and lines starting with `#`
/// are skipped.
///
/// ```text
/// time_s,p
/// 0,0.4
/// 43200,0.9
/// ```
pub fn parse_csv_profile<R: io::Read>(
    reader: R,
    column: &str,
    path: &Path,
) -> Result<CsvProfile, ProfileError> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(reader);
    let malformed = |e: csv::Error| match e.kind() {
        csv::ErrorKind::Io(_) => {
            let message = e.to_string();
            ProfileError::Io {
                path: path.to_owned(),
                source: match e.into_kind() {
                    csv::ErrorKind::Io(io) => io,
                    _ => io::Error::other(message),
                },
            }
        }
        _ => ProfileError::Malformed {
            path: path.to_owned(),
            line: e.position().map_or(0, |p| p.line()),
            message: e.to_string(),
        },
    };
    let headers = rdr.headers().map_err(malformed)?.clone();
    let Some(first) = headers.get(0) else {
        return Err(ProfileError::Empty {
            path: path.to_owned(),
        });
    };
    if first != TIME_COLUMN {
        return Err(ProfileError::TimeColumn {
            path: path.to_owned(),
            found: first.to_owned(),
        });
    }
    let Some(value_idx) = headers.iter().position(|h| h == column) else {
        return Err(ProfileError::MissingColumn {
            path: path.to_owned(),
            column: column.to_owned(),
            available: headers.iter().collect::<Vec<_>>().join(", "),
        });
    };

    let mut points: Vec<(f64, f64)> = Vec::new();
    for record in rdr.records() {
        let record = record.map_err(malformed)?;
        let line = record.position().map_or(0, |p| p.line());
        let number = |idx: usize, name: &str| -> Result<f64, ProfileError> {
            // The reader rejects rows with a different field count, so the
            // cell exists; `unwrap_or` keeps this panic-free regardless.
            let text = record.get(idx).unwrap_or("");
            text.parse::<f64>().map_err(|_| ProfileError::NotANumber {
                path: path.to_owned(),
                line,
                column: name.to_owned(),
                value: text.to_owned(),
            })
        };
        let time_s = number(0, TIME_COLUMN)?;
        let value = number(value_idx, column)?;
        if !(0.0..DAY_S).contains(&time_s) {
            return Err(ProfileError::TimeOutOfRange {
                path: path.to_owned(),
                line,
                time_s,
            });
        }
        if let Some(&(previous_s, _)) = points.last()
            && time_s <= previous_s
        {
            return Err(ProfileError::TimeNotIncreasing {
                path: path.to_owned(),
                line,
                time_s,
                previous_s,
            });
        }
        if !(value.is_finite() && value >= 0.0) {
            return Err(ProfileError::BadValue {
                path: path.to_owned(),
                line,
                column: column.to_owned(),
                value,
            });
        }
        points.push((time_s, value));
    }
    if points.is_empty() {
        return Err(ProfileError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(CsvProfile {
        points: points.into(),
    })
}

// ---------------------------------------------------------------------------
// Specs
// ---------------------------------------------------------------------------

tagged_enum! {
    tag = "type";
    /// A device of a microgrid, as written in the scenario file (`type = ...`).
    #[derive(Clone, Debug, PartialEq)]
    pub enum DeviceSpec {
        /// A battery.
        Storage(StorageSpec),
        /// A solar plant.
        Pv(PvSpec),
        /// A demand.
        Load(LoadSpec),
    }
}

impl DeviceSpec {
    /// The device's id.
    pub fn id(&self) -> &str {
        match self {
            DeviceSpec::Storage(s) => &s.id,
            DeviceSpec::Pv(s) => &s.id,
            DeviceSpec::Load(s) => &s.id,
        }
    }

    /// The feeder bus the device sits on, if the scenario says.
    pub fn bus(&self) -> Option<usize> {
        match self {
            DeviceSpec::Storage(s) => s.bus,
            DeviceSpec::Pv(s) => s.bus,
            DeviceSpec::Load(s) => s.bus,
        }
    }

    /// The `type` tag: `"storage"`, `"pv"` or `"load"`.
    pub fn kind(&self) -> &'static str {
        match self {
            DeviceSpec::Storage(_) => "storage",
            DeviceSpec::Pv(_) => "pv",
            DeviceSpec::Load(_) => "load",
        }
    }

    /// The device's profile, if it has one (PV and load).
    pub fn profile(&self) -> Option<&Profile> {
        match self {
            DeviceSpec::Storage(_) => None,
            DeviceSpec::Pv(s) => Some(&s.profile),
            DeviceSpec::Load(s) => Some(&s.profile),
        }
    }

    /// The device's profile, mutably (to [`Profile::load`] it).
    pub fn profile_mut(&mut self) -> Option<&mut Profile> {
        match self {
            DeviceSpec::Storage(_) => None,
            DeviceSpec::Pv(s) => Some(&mut s.profile),
            DeviceSpec::Load(s) => Some(&mut s.profile),
        }
    }

    /// Checks the parameters; on failure returns the key (relative to the
    /// device table, e.g. `soc_init` or `profile.sunset_h`) and the problem.
    pub fn validate(&self) -> Result<(), SpecError> {
        match self {
            DeviceSpec::Storage(s) => s.validate(),
            DeviceSpec::Pv(s) => s.validate(),
            DeviceSpec::Load(s) => s.validate(),
        }
    }
}

/// A battery (`type = "storage"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSpec {
    /// Unique id of the device within its microgrid.
    pub id: String,
    /// Feeder bus; the caller assigns a default when absent.
    #[serde(default)]
    pub bus: Option<usize>,
    /// Usable energy capacity at SOC 1.0, MWh. Must be > 0.
    pub capacity_mwh: f64,
    /// Power limit, both directions, MW. Must be > 0.
    pub p_max_mw: f64,
    /// SOC at the start, fraction of capacity. Default 0.5.
    #[serde(default = "default_soc_init")]
    pub soc_init: f64,
    /// Lowest SOC the battery may reach. Default 0.0.
    #[serde(default)]
    pub soc_min: f64,
    /// Highest SOC the battery may reach. Default 1.0.
    #[serde(default = "default_soc_max")]
    pub soc_max: f64,
    /// One-way efficiency, applied when charging (energy stored = energy
    /// in × efficiency) and when discharging (energy out = energy drawn ×
    /// efficiency), in `(0, 1]`. Default 0.95.
    #[serde(default = "default_efficiency")]
    pub efficiency: f64,
}

fn default_soc_init() -> f64 {
    0.5
}

fn default_soc_max() -> f64 {
    1.0
}

fn default_efficiency() -> f64 {
    0.95
}

impl StorageSpec {
    /// Checks the parameters (see [`DeviceSpec::validate`]).
    pub fn validate(&self) -> Result<(), SpecError> {
        check_id(&self.id)?;
        check_positive("capacity_mwh", self.capacity_mwh)?;
        check_positive("p_max_mw", self.p_max_mw)?;
        check_fraction("soc_min", self.soc_min)?;
        check_fraction("soc_max", self.soc_max)?;
        check_fraction("soc_init", self.soc_init)?;
        if self.soc_min > self.soc_max {
            return Err(spec_err(
                "soc_max",
                format!(
                    "must be >= soc_min ({}), got {}",
                    self.soc_min, self.soc_max
                ),
            ));
        }
        if !(self.soc_min..=self.soc_max).contains(&self.soc_init) {
            return Err(spec_err(
                "soc_init",
                format!(
                    "must be between soc_min ({}) and soc_max ({}), got {}",
                    self.soc_min, self.soc_max, self.soc_init
                ),
            ));
        }
        if !(self.efficiency > 0.0 && self.efficiency <= 1.0) {
            return Err(spec_err(
                "efficiency",
                format!("must be in (0, 1], got {}", self.efficiency),
            ));
        }
        Ok(())
    }
}

/// A solar plant (`type = "pv"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PvSpec {
    /// Unique id of the device within its microgrid.
    pub id: String,
    /// Feeder bus; the caller assigns a default when absent.
    #[serde(default)]
    pub bus: Option<usize>,
    /// Output at profile value 1.0, MW. Must be > 0.
    pub peak_mw: f64,
    /// The output shape. Default: solar, 06:00 to 18:00.
    #[serde(default = "Profile::default_solar")]
    pub profile: Profile,
    /// Whether the grid agent may curtail it. Default true.
    #[serde(default = "default_true")]
    pub curtailable: bool,
    /// Fractional standard deviation of multiplicative profile noise,
    /// in `[0, 1]`, drawn by the caller. Default 0.
    #[serde(default)]
    pub noise: f64,
}

fn default_true() -> bool {
    true
}

impl PvSpec {
    /// Checks the parameters (see [`DeviceSpec::validate`]).
    pub fn validate(&self) -> Result<(), SpecError> {
        check_id(&self.id)?;
        check_positive("peak_mw", self.peak_mw)?;
        check_fraction("noise", self.noise)?;
        self.profile.validate().map_err(|e| nested("profile", e))
    }
}

/// A demand (`type = "load"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadSpec {
    /// Unique id of the device within its microgrid.
    pub id: String,
    /// Feeder bus; the caller assigns a default when absent.
    #[serde(default)]
    pub bus: Option<usize>,
    /// Demand at profile value 1.0, MW. Must be > 0.
    pub base_mw: f64,
    /// Power factor (lagging), in `(0, 1]`. Default 0.95.
    #[serde(default = "default_power_factor")]
    pub power_factor: f64,
    /// The demand shape. Default: the built-in residential day.
    #[serde(default = "default_load_profile")]
    pub profile: Profile,
    /// Fractional standard deviation of multiplicative profile noise,
    /// in `[0, 1]`, drawn by the caller. Default 0.
    #[serde(default)]
    pub noise: f64,
}

fn default_power_factor() -> f64 {
    0.95
}

fn default_load_profile() -> Profile {
    Profile::Daily
}

impl LoadSpec {
    /// Checks the parameters (see [`DeviceSpec::validate`]).
    pub fn validate(&self) -> Result<(), SpecError> {
        check_id(&self.id)?;
        check_positive("base_mw", self.base_mw)?;
        if !(self.power_factor > 0.0 && self.power_factor <= 1.0) {
            return Err(spec_err(
                "power_factor",
                format!("must be in (0, 1], got {}", self.power_factor),
            ));
        }
        check_fraction("noise", self.noise)?;
        self.profile.validate().map_err(|e| nested("profile", e))
    }
}

// ---------------------------------------------------------------------------
// Runtime physics
// ---------------------------------------------------------------------------

/// A battery's state: its spec and its state of charge.
///
/// The spec is expected to be valid ([`StorageSpec::validate`]); an invalid
/// one never panics, but a battery with no capacity or efficiency simply
/// delivers nothing.
#[derive(Clone, Debug, PartialEq)]
pub struct Storage {
    spec: StorageSpec,
    soc: f64,
}

impl Storage {
    /// A battery at its initial SOC.
    pub fn new(spec: StorageSpec) -> Storage {
        let soc = spec.soc_init;
        Storage { spec, soc }
    }

    /// The spec.
    pub fn spec(&self) -> &StorageSpec {
        &self.spec
    }

    /// State of charge, fraction of capacity.
    pub fn soc(&self) -> f64 {
        self.soc
    }

    /// Stored energy, MWh.
    pub fn energy_mwh(&self) -> f64 {
        self.soc * self.spec.capacity_mwh
    }

    /// Applies `setpoint_mw` (positive = discharge into the grid, negative =
    /// charge) for `dt_s` seconds and returns the power actually exchanged
    /// with the grid, MW, with the same sign convention. Reactive power is 0.
    ///
    /// The setpoint is clamped to `±p_max_mw`, then to what the SOC limits
    /// allow over `dt_s`: delivering `p` draws `p · dt / efficiency` from
    /// the cells; charging at `p` stores `p · dt · efficiency`. A
    /// non-finite setpoint or a non-positive `dt_s` delivers nothing and
    /// leaves the SOC unchanged.
    pub fn step(&mut self, setpoint_mw: f64, dt_s: f64) -> f64 {
        let s = &self.spec;
        let usable = setpoint_mw.is_finite()
            && dt_s.is_finite()
            && dt_s > 0.0
            && s.capacity_mwh > 0.0
            && s.efficiency > 0.0
            && s.p_max_mw > 0.0;
        if !usable {
            return 0.0;
        }
        let dt_h = dt_s / 3600.0;
        let cap = s.capacity_mwh;
        let eff = s.efficiency;
        if setpoint_mw > 0.0 {
            let stored_mwh = non_negative((self.soc - s.soc_min) * cap);
            let p_mw = setpoint_mw.min(s.p_max_mw).min(stored_mwh * eff / dt_h);
            // Rounding may overshoot the limit by an ulp; the clamp keeps
            // the invariant `soc >= soc_min` exact.
            self.soc = (self.soc - p_mw * dt_h / (eff * cap)).max(s.soc_min);
            p_mw
        } else if setpoint_mw < 0.0 {
            let room_mwh = non_negative((s.soc_max - self.soc) * cap);
            let p_mw = (-setpoint_mw).min(s.p_max_mw).min(room_mwh / (eff * dt_h));
            self.soc = (self.soc + p_mw * dt_h * eff / cap).min(s.soc_max);
            -p_mw
        } else {
            0.0
        }
    }
}

/// A solar plant.
#[derive(Clone, Debug, PartialEq)]
pub struct Pv {
    spec: PvSpec,
}

impl Pv {
    /// A plant with this spec.
    pub fn new(spec: PvSpec) -> Pv {
        Pv { spec }
    }

    /// The spec.
    pub fn spec(&self) -> &PvSpec {
        &self.spec
    }

    /// Output before curtailment, MW: `peak_mw × profile_value` (negative
    /// profile values read as 0; `NaN` stays `NaN`).
    pub fn available_mw(&self, profile_value: f64) -> f64 {
        self.spec.peak_mw * non_negative(profile_value)
    }

    /// Output delivered to the grid, MW: the available output reduced by
    /// `curtail_fraction` (clamped to `[0, 1]`, `NaN` read as 0). A plant
    /// that is not `curtailable` ignores the fraction. Reactive power is 0.
    pub fn output_mw(&self, profile_value: f64, curtail_fraction: f64) -> f64 {
        let curtail = if self.spec.curtailable {
            clamp_fraction(curtail_fraction)
        } else {
            0.0
        };
        self.available_mw(profile_value) * (1.0 - curtail)
    }
}

/// A demand.
#[derive(Clone, Debug, PartialEq)]
pub struct Load {
    spec: LoadSpec,
}

impl Load {
    /// A load with this spec.
    pub fn new(spec: LoadSpec) -> Load {
        Load { spec }
    }

    /// The spec.
    pub fn spec(&self) -> &LoadSpec {
        &self.spec
    }

    /// Power consumed, `(P_MW, Q_MVAr)`, both positive for a lagging load:
    /// `P = base_mw × profile_value` (negative values read as 0),
    /// `Q = P × tan(acos(pf)) = P × sqrt(1 - pf²) / pf`. A power factor
    /// outside `(0, 1]` (rejected by validation) is read as 1.
    pub fn demand(&self, profile_value: f64) -> (f64, f64) {
        let p_mw = self.spec.base_mw * non_negative(profile_value);
        let pf = self.spec.power_factor;
        let tan_phi = if pf > 0.0 && pf <= 1.0 {
            (1.0 - pf * pf).sqrt() / pf
        } else {
            0.0
        };
        (p_mw, p_mw * tan_phi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage_spec() -> StorageSpec {
        StorageSpec {
            id: "b".into(),
            bus: None,
            capacity_mwh: 2.0,
            p_max_mw: 1.0,
            soc_init: 0.5,
            soc_min: 0.1,
            soc_max: 0.9,
            efficiency: 0.9,
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * (1.0 + b.abs())
    }

    fn csv(text: &str) -> Result<CsvProfile, ProfileError> {
        parse_csv_profile(text.as_bytes(), "p", Path::new("mem.csv"))
    }

    // --- storage -----------------------------------------------------------

    #[test]
    fn charging_stores_energy_times_efficiency() {
        let mut b = Storage::new(storage_spec());
        let p = b.step(-0.5, 3600.0);
        assert_eq!(p, -0.5);
        // 0.5 MWh in, 0.45 MWh stored, on 2 MWh: +0.225.
        assert!(close(b.soc(), 0.725), "{}", b.soc());
    }

    #[test]
    fn discharging_draws_energy_over_efficiency() {
        let mut b = Storage::new(storage_spec());
        let p = b.step(0.45, 3600.0);
        assert_eq!(p, 0.45);
        // 0.45 MWh out draws 0.5 MWh: -0.25.
        assert!(close(b.soc(), 0.25), "{}", b.soc());
    }

    #[test]
    fn round_trip_loses_efficiency_squared() {
        let mut b = Storage::new(storage_spec());
        let e0 = b.energy_mwh();
        let mut into_grid_mwh = 0.0;
        let mut from_grid_mwh = 0.0;
        for _ in 0..60 {
            from_grid_mwh -= b.step(-0.3, 60.0) * 60.0 / 3600.0;
        }
        let e1 = b.energy_mwh();
        assert!(close(e1 - e0, from_grid_mwh * 0.9));
        for _ in 0..60 {
            into_grid_mwh += b.step(0.2, 60.0) * 60.0 / 3600.0;
        }
        assert!(close(e1 - b.energy_mwh(), into_grid_mwh / 0.9));
    }

    #[test]
    fn power_is_clamped_to_p_max() {
        let mut b = Storage::new(storage_spec());
        assert_eq!(b.step(5.0, 1.0), 1.0);
        assert_eq!(b.step(-5.0, 1.0), -1.0);
    }

    #[test]
    fn soc_limits_hold_and_clamp_the_last_step() {
        let mut b = Storage::new(storage_spec());
        // 0.4 of 2 MWh = 0.8 MWh above soc_min; at 1 MW with 0.9 efficiency
        // that lasts 0.72 h, so a 1 h step delivers 0.72 MW on average.
        let p = b.step(1.0, 3600.0);
        assert!(close(p, 0.72), "{p}");
        assert_eq!(b.soc(), 0.1);
        assert_eq!(b.step(1.0, 3600.0), 0.0);
        assert_eq!(b.soc(), 0.1);
        for _ in 0..1000 {
            let p = b.step(-1.0, 60.0);
            assert!((-1.0..=0.0).contains(&p));
            assert!(b.soc() <= 0.9);
        }
        assert_eq!(b.soc(), 0.9);
        assert_eq!(b.step(-1.0, 60.0), 0.0);
    }

    #[test]
    fn bad_step_input_changes_nothing() {
        let mut b = Storage::new(storage_spec());
        for (p, dt) in [
            (f64::NAN, 1.0),
            (1.0, 0.0),
            (1.0, -1.0),
            (1.0, f64::INFINITY),
            (0.0, 1.0),
        ] {
            assert_eq!(b.step(p, dt), 0.0);
            assert_eq!(b.soc(), 0.5);
        }
        let mut empty = Storage::new(StorageSpec {
            capacity_mwh: 0.0,
            ..storage_spec()
        });
        assert_eq!(empty.step(1.0, 1.0), 0.0);
    }

    // --- pv and load -------------------------------------------------------

    #[test]
    fn pv_curtailment() {
        let spec = PvSpec {
            id: "pv".into(),
            bus: None,
            peak_mw: 2.0,
            profile: Profile::default_solar(),
            curtailable: true,
            noise: 0.0,
        };
        let pv = Pv::new(spec.clone());
        assert_eq!(pv.output_mw(0.5, 0.0), 1.0);
        assert_eq!(pv.output_mw(0.5, 0.25), 0.75);
        assert_eq!(pv.output_mw(0.5, 2.0), 0.0);
        assert_eq!(pv.output_mw(0.5, f64::NAN), 1.0);
        assert_eq!(pv.output_mw(-0.5, 0.0), 0.0);
        let fixed = Pv::new(PvSpec {
            curtailable: false,
            ..spec
        });
        assert_eq!(fixed.output_mw(0.5, 0.5), 1.0);
    }

    #[test]
    fn load_reactive_power_follows_power_factor() {
        let load = Load::new(LoadSpec {
            id: "l".into(),
            bus: None,
            base_mw: 1.0,
            power_factor: 0.8,
            profile: Profile::Daily,
            noise: 0.0,
        });
        let (p, q) = load.demand(0.5);
        assert_eq!(p, 0.5);
        assert!(close(q, 0.375)); // tan(acos 0.8) = 0.75
        let unity = Load::new(LoadSpec {
            power_factor: 1.0,
            ..load.spec().clone()
        });
        assert_eq!(unity.demand(1.0), (1.0, 0.0));
    }

    // --- profiles ----------------------------------------------------------

    #[test]
    fn solar_is_zero_at_night_and_peaks_at_noon() {
        let p = Profile::default_solar();
        for h in [0.0, 3.0, 6.0, 18.0, 21.0, 23.99] {
            assert_eq!(p.value_at(h * 3600.0), 0.0, "hour {h}");
        }
        assert!(close(p.value_at(12.0 * 3600.0), 1.0));
        assert!(close(p.value_at(9.0 * 3600.0), p.value_at(15.0 * 3600.0)));
        assert!(p.value_at(9.0 * 3600.0) < p.value_at(11.0 * 3600.0));
        // Wraps: noon of day 3, and a negative time.
        assert!(close(p.value_at(2.0 * DAY_S + 12.0 * 3600.0), 1.0));
        assert_eq!(p.value_at(-1.0), 0.0);
        for k in 0..=96 {
            let v = p.value_at(f64::from(k) * 900.0);
            assert!((0.0..=1.0).contains(&v));
        }
    }

    #[test]
    fn daily_interpolates_between_hours() {
        let p = Profile::Daily;
        assert_eq!(p.value_at(0.0), 0.45);
        assert_eq!(p.value_at(19.0 * 3600.0), 1.0);
        assert!(close(p.value_at(18.5 * 3600.0), 0.96));
        // 23:30 heads back toward the 00:00 value.
        assert!(close(p.value_at(23.5 * 3600.0), 0.5));
        assert_eq!(p.value_at(DAY_S), 0.45);
        let max = DAILY_RESIDENTIAL.iter().copied().fold(0.0, f64::max);
        assert_eq!(max, 1.0);
    }

    #[test]
    fn constant_profile() {
        let p = Profile::Constant { value: 0.8 };
        assert_eq!(p.value_at(0.0), 0.8);
        assert_eq!(p.value_at(50_000.0), 0.8);
    }

    #[test]
    fn csv_interpolates_and_wraps() {
        let c = csv("time_s,p\n21600,0.2\n43200,1.0\n64800,0.4\n").unwrap();
        assert_eq!(c.points().len(), 3);
        assert_eq!(c.value_at(21_600.0), 0.2);
        assert!(close(c.value_at(32_400.0), 0.6));
        assert!(close(c.value_at(54_000.0), 0.7));
        // 18:00 → 06:00 next day, 12 h, from 0.4 to 0.2: midnight is 0.3.
        assert!(close(c.value_at(0.0), 0.3));
        assert!(close(c.value_at(DAY_S), 0.3));
        assert!(close(c.value_at(75_600.0), 0.35));
        assert!(close(c.value_at(10_800.0), 0.25));
        let p = Profile::from_csv("mem.csv", "p", c);
        assert!(p.is_ready());
        assert!(close(p.value_at(32_400.0), 0.6));
    }

    #[test]
    fn csv_single_point_and_extra_columns() {
        let c = parse_csv_profile(
            "# a comment\ntime_s , q , p\n\n100, 9, 1.5\n".as_bytes(),
            "p",
            Path::new("m"),
        )
        .unwrap();
        assert_eq!(c.value_at(5.0), 1.5);
        assert_eq!(c.value_at(80_000.0), 1.5);
    }

    #[test]
    fn csv_errors_name_the_line() {
        let err = csv("time_s,p\n0,0.1\n60,abc\n").unwrap_err();
        assert!(
            matches!(err, ProfileError::NotANumber { line: 3, .. }),
            "{err:?}"
        );
        assert!(err.to_string().starts_with("mem.csv:3:"), "{err}");

        let err = csv("time_s,p\n0,0.1\n60,0.2\n60,0.3\n").unwrap_err();
        assert!(
            matches!(err, ProfileError::TimeNotIncreasing { line: 4, .. }),
            "{err:?}"
        );

        let err = csv("time_s,p\n0,0.1\n86400,0.2\n").unwrap_err();
        assert!(
            matches!(err, ProfileError::TimeOutOfRange { line: 3, .. }),
            "{err:?}"
        );

        let err = csv("time_s,p\n0,-0.1\n").unwrap_err();
        assert!(
            matches!(err, ProfileError::BadValue { line: 2, .. }),
            "{err:?}"
        );

        let err = csv("time_s,p\n0,0.1\n5,0.2,7\n").unwrap_err();
        assert!(
            matches!(err, ProfileError::Malformed { line: 3, .. }),
            "{err:?}"
        );

        let err = csv("time_s,q\n0,0.1\n").unwrap_err();
        assert!(matches!(err, ProfileError::MissingColumn { .. }), "{err:?}");
        assert!(err.to_string().contains("time_s, q"), "{err}");

        let err = csv("t,p\n0,0.1\n").unwrap_err();
        assert!(matches!(err, ProfileError::TimeColumn { .. }), "{err:?}");

        assert!(matches!(csv("").unwrap_err(), ProfileError::Empty { .. }));
        assert!(matches!(
            csv("time_s,p\n").unwrap_err(),
            ProfileError::Empty { .. }
        ));
    }

    #[test]
    fn unloaded_csv_profile_is_nan_and_missing_file_names_it() {
        let mut p = Profile::Csv {
            path: "no/such/file.csv".into(),
            column: "p".into(),
            data: None,
        };
        assert!(!p.is_ready());
        assert!(p.value_at(0.0).is_nan());
        let err = p.load(Path::new("/nonexistent-busbar-dir")).unwrap_err();
        assert!(matches!(err, ProfileError::Io { .. }));
        assert!(err.to_string().contains("file.csv"), "{err}");
    }

    #[test]
    fn profile_validation() {
        let bad = Profile::Solar {
            sunrise_h: 18.0,
            sunset_h: 6.0,
        };
        assert_eq!(bad.validate().unwrap_err().0, "sunset_h");
        let bad = Profile::Constant { value: 1.5 };
        assert_eq!(bad.validate().unwrap_err().0, "value");
        let bad = Profile::Csv {
            path: "x.csv".into(),
            column: "time_s".into(),
            data: None,
        };
        assert_eq!(bad.validate().unwrap_err().0, "column");
        assert_eq!(Profile::Daily.validate(), Ok(()));
    }

    // --- specs from TOML ---------------------------------------------------

    #[derive(Deserialize)]
    struct Devices {
        devices: Vec<DeviceSpec>,
    }

    fn parse(text: &str) -> Result<Vec<DeviceSpec>, toml::de::Error> {
        toml::from_str::<Devices>(text).map(|d| d.devices)
    }

    #[test]
    fn specs_parse_from_toml_with_defaults() {
        let devices = parse(
            r#"
            [[devices]]
            type = "storage"
            id = "bess"
            capacity_mwh = 2
            p_max_mw = 0.5

            [[devices]]
            type = "pv"
            id = "pv"
            bus = 3
            peak_mw = 0.8
            profile = { kind = "solar", sunrise_h = 5.5 }

            [[devices]]
            type = "load"
            id = "houses"
            base_mw = 0.6
            noise = 0.05
            profile = { kind = "csv", path = "profiles/h.csv", column = "p" }

            [[devices]]
            type = "load"
            id = "shop"
            base_mw = 0.1
            "#,
        )
        .unwrap();
        let DeviceSpec::Storage(s) = &devices[0] else {
            panic!("{:?}", devices[0])
        };
        assert_eq!(
            (s.capacity_mwh, s.soc_init, s.soc_min, s.soc_max),
            (2.0, 0.5, 0.0, 1.0)
        );
        assert_eq!(s.efficiency, 0.95);
        let DeviceSpec::Pv(pv) = &devices[1] else {
            panic!()
        };
        assert_eq!(pv.bus, Some(3));
        assert!(pv.curtailable);
        assert_eq!(
            pv.profile,
            Profile::Solar {
                sunrise_h: 5.5,
                sunset_h: 18.0
            }
        );
        let DeviceSpec::Load(l) = &devices[2] else {
            panic!()
        };
        assert_eq!(l.power_factor, 0.95);
        assert!(!l.profile.is_ready());
        let DeviceSpec::Load(shop) = &devices[3] else {
            panic!()
        };
        assert_eq!(shop.profile, Profile::Daily);
        assert_eq!(devices[2].id(), "houses");
        assert_eq!(devices[1].kind(), "pv");
        for d in &devices {
            assert_eq!(d.validate(), Ok(()), "{}", d.id());
        }
    }

    #[test]
    fn unknown_keys_and_kinds_are_rejected() {
        let err = parse("[[devices]]\ntype = \"pv\"\nid = \"a\"\npeak_mw = 1\npeak_kw = 2\n")
            .unwrap_err();
        assert!(err.to_string().contains("peak_kw"), "{err}");
        assert!(parse("[[devices]]\ntype = \"wind\"\nid = \"a\"\n").is_err());
        let err = parse(
            "[[devices]]\ntype = \"pv\"\nid = \"a\"\npeak_mw = 1\nprofile = { kind = \"solar\", noon_h = 12 }\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("noon_h"), "{err}");
        // `data` is runtime state, not a key.
        assert!(
            parse("[[devices]]\ntype = \"pv\"\nid = \"a\"\npeak_mw = 1\nprofile = { kind = \"csv\", path = \"x\", column = \"p\", data = 1 }\n")
                .is_err()
        );
    }

    #[test]
    fn validation_names_the_key() {
        let key = |s: StorageSpec| DeviceSpec::Storage(s).validate().unwrap_err().0;
        assert_eq!(
            key(StorageSpec {
                capacity_mwh: 0.0,
                ..storage_spec()
            }),
            "capacity_mwh"
        );
        assert_eq!(
            key(StorageSpec {
                p_max_mw: f64::NAN,
                ..storage_spec()
            }),
            "p_max_mw"
        );
        assert_eq!(
            key(StorageSpec {
                soc_init: 0.95,
                ..storage_spec()
            }),
            "soc_init"
        );
        assert_eq!(
            key(StorageSpec {
                soc_init: 1.5,
                ..storage_spec()
            }),
            "soc_init"
        );
        assert_eq!(
            key(StorageSpec {
                soc_min: 0.95,
                ..storage_spec()
            }),
            "soc_max"
        );
        assert_eq!(
            key(StorageSpec {
                efficiency: 0.0,
                ..storage_spec()
            }),
            "efficiency"
        );
        assert_eq!(
            key(StorageSpec {
                efficiency: 1.01,
                ..storage_spec()
            }),
            "efficiency"
        );
        assert_eq!(
            key(StorageSpec {
                id: " ".into(),
                ..storage_spec()
            }),
            "id"
        );

        let load = LoadSpec {
            id: "l".into(),
            bus: None,
            base_mw: 1.0,
            power_factor: 0.0,
            profile: Profile::Daily,
            noise: 0.0,
        };
        assert_eq!(load.validate().unwrap_err().0, "power_factor");
        let load = LoadSpec {
            power_factor: 0.9,
            noise: -0.1,
            ..load
        };
        assert_eq!(load.validate().unwrap_err().0, "noise");
        let pv = PvSpec {
            id: "p".into(),
            bus: None,
            peak_mw: 1.0,
            profile: Profile::Solar {
                sunrise_h: -1.0,
                sunset_h: 18.0,
            },
            curtailable: true,
            noise: 0.0,
        };
        let (key, msg) = pv.validate().unwrap_err();
        assert_eq!(key, "profile.sunrise_h");
        assert!(msg.contains("-1"), "{msg}");
    }
}
