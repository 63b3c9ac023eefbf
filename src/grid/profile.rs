//! Profiles: how a PV plant's or a load's power varies over the day, as a
//! multiplier of its rated power — built-in shapes (solar, constant, a
//! residential day) or a CSV file of measured points.
//!
//! All time-of-day functions take seconds since midnight and wrap every
//! 24 h, so the caller can pass `start_hour * 3600 + seconds since the
//! start` without reducing it. Floating-point functions other than
//! `+ - * /` and `sqrt` come from `libm`, so profiles give the same bits on
//! every platform.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::tagged::tagged_enum;
use crate::validate::Validator;

/// Seconds in a day: every profile wraps with this period.
pub const DAY_S: f64 = 86_400.0;

/// `t` reduced to `[0, DAY_S)`; `NaN` stays `NaN`.
pub(crate) fn wrap_day_s(t_s: f64) -> f64 {
    let r = libm::fmod(t_s, DAY_S);
    let r = if r < 0.0 { r + DAY_S } else { r };
    // A tiny negative remainder plus a day can round up to a whole day.
    if r >= DAY_S { 0.0 } else { r }
}

/// `v` with negative values replaced by 0; `NaN` stays `NaN` so that a
/// missing profile is visible downstream instead of reading as zero.
pub(crate) fn non_negative(v: f64) -> f64 {
    if v < 0.0 { 0.0 } else { v }
}

/// `v` clamped to `[0, 1]`, with `NaN` read as 0.
pub(crate) fn clamp_fraction(v: f64) -> f64 {
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

    /// Checks the parameters (keys relative to the profile table).
    pub fn validate(&self, v: &mut Validator) {
        match self {
            Profile::Solar {
                sunrise_h,
                sunset_h,
            } => {
                v.check((0.0..24.0).contains(sunrise_h), "sunrise_h", || {
                    format!("sunrise_h must be an hour in [0, 24), got {sunrise_h}")
                });
                v.check(*sunset_h > *sunrise_h && *sunset_h <= 24.0, "sunset_h", || {
                    format!(
                        "sunset_h must be after sunrise_h ({sunrise_h}) and at most 24, got {sunset_h}"
                    )
                });
            }
            Profile::Constant { value } => {
                v.fraction("value", *value);
            }
            Profile::Daily => {}
            Profile::Csv { path, column, .. } => {
                v.check(!path.as_os_str().is_empty(), "path", || {
                    "path must name a CSV file".into()
                });
                if column.trim().is_empty() {
                    v.fail("column", "column must name a column of the CSV file");
                } else if column == TIME_COLUMN {
                    v.fail(
                        "column",
                        format!(
                            "column must name a value column, not the time column `{TIME_COLUMN}`"
                        ),
                    );
                }
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
    let file = crate::files::open_reader(path, "profile", crate::files::MAX_PROFILE_BYTES)
        .map_err(|e| match e {
            crate::files::FileError::Io { path, source } => ProfileError::Io { path, source },
            other => ProfileError::Io {
                path: path.to_owned(),
                source: io::Error::new(io::ErrorKind::InvalidInput, other.detail()),
            },
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

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * (1.0 + b.abs())
    }

    fn csv(text: &str) -> Result<CsvProfile, ProfileError> {
        parse_csv_profile(text.as_bytes(), "p", Path::new("mem.csv"))
    }

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

    fn issue_keys(p: &Profile) -> Vec<String> {
        let mut v = Validator::new();
        p.validate(&mut v);
        v.issues().iter().map(|i| i.path.to_string()).collect()
    }

    #[test]
    fn profile_validation() {
        let bad = Profile::Solar {
            sunrise_h: 18.0,
            sunset_h: 6.0,
        };
        assert_eq!(issue_keys(&bad), ["sunset_h"]);
        let bad = Profile::Constant { value: 1.5 };
        assert_eq!(issue_keys(&bad), ["value"]);
        let bad = Profile::Csv {
            path: "x.csv".into(),
            column: "time_s".into(),
            data: None,
        };
        assert_eq!(issue_keys(&bad), ["column"]);
        assert!(issue_keys(&Profile::Daily).is_empty());
    }
}
