//! Reading input files safely: only regular files, and never more than a
//! stated number of bytes.
//!
//! Every file busbar reads (a scenario, a CSV profile, a trace) is opened
//! through [`open_regular`]: a path that names a directory, a FIFO, a
//! socket or a device such as `/dev/zero` is refused before a byte is read
//! (so nothing blocks forever or reads without end), and a file larger than
//! the bound for its kind is refused with an error that names the file and
//! the bound. The bounds are the constants below.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Largest scenario file read (4 MiB): a scenario is a few hundred lines.
pub const MAX_SCENARIO_BYTES: u64 = 4 << 20;
/// Largest CSV profile read (256 MiB: about ten million rows).
pub const MAX_PROFILE_BYTES: u64 = 256 << 20;
/// Largest batch results CSV read by a merge (64 GiB; read row by row, so
/// memory never depends on it).
pub const MAX_RESULTS_BYTES: u64 = 64 << 30;
/// Largest trace file read (64 GiB). Traces are read frame by frame with
/// each frame bounded, so memory never depends on this; it only stops a
/// runaway input.
pub const MAX_TRACE_BYTES: u64 = 64 << 30;

/// Why an input file could not be read.
#[derive(Debug)]
#[non_exhaustive]
pub enum FileError {
    /// The file could not be opened or read.
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The path names something other than a regular file.
    NotRegular {
        /// The file.
        path: PathBuf,
        /// What it is instead (directory, FIFO, device, ...).
        what: &'static str,
    },
    /// The file is larger than the bound for its kind.
    TooLarge {
        /// The file.
        path: PathBuf,
        /// What kind of file (scenario, profile, trace).
        kind: &'static str,
        /// Its size in bytes (as far as it was read).
        size: u64,
        /// The bound.
        limit: u64,
    },
    /// The file is not valid UTF-8 text.
    NotText {
        /// The file.
        path: PathBuf,
        /// Where the first bad byte is.
        source: std::str::Utf8Error,
    },
}

impl FileError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            FileError::Io { path, .. }
            | FileError::NotRegular { path, .. }
            | FileError::TooLarge { path, .. }
            | FileError::NotText { path, .. } => path,
        }
    }

    /// What is wrong, without the file's name (for messages that name the
    /// file their own way).
    pub fn detail(&self) -> String {
        match self {
            FileError::Io { source, .. } => source.to_string(),
            FileError::NotRegular { what, .. } => {
                format!("not a regular file ({what}); busbar reads only regular files")
            }
            FileError::TooLarge {
                kind, size, limit, ..
            } => format!(
                "{size} bytes, larger than the {} limit for {kind} files",
                Bytes(*limit)
            ),
            FileError::NotText { source, .. } => format!("not UTF-8 text ({source})"),
        }
    }
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path().display(), self.detail())
    }
}

impl std::error::Error for FileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FileError::Io { source, .. } => Some(source),
            FileError::NotText { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A byte count printed with a binary unit (`4 MiB`).
struct Bytes(u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 4] = ["GiB", "MiB", "KiB", "bytes"];
        for (i, unit) in UNITS.iter().enumerate() {
            let scale = 1u64 << (10 * (3 - i));
            if self.0 >= scale && self.0.is_multiple_of(scale) {
                return write!(f, "{} {unit}", self.0 / scale);
            }
        }
        write!(f, "{} bytes", self.0)
    }
}

fn describe(ft: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return "a FIFO";
        }
        if ft.is_socket() {
            return "a socket";
        }
        if ft.is_char_device() || ft.is_block_device() {
            return "a device";
        }
    }
    if ft.is_dir() {
        "a directory"
    } else {
        "not a file"
    }
}

/// Opens `path` for reading if it is a regular file of at most `limit`
/// bytes (`kind` names the kind of file in the error). Symbolic links are
/// followed. The type is checked before opening, so a FIFO is refused
/// without blocking, and checked again on the opened file.
pub fn open_regular(path: &Path, kind: &'static str, limit: u64) -> Result<File, FileError> {
    let io = |source| FileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    let check = |meta: &std::fs::Metadata| {
        if !meta.file_type().is_file() {
            return Err(FileError::NotRegular {
                path: path.to_path_buf(),
                what: describe(&meta.file_type()),
            });
        }
        if meta.len() > limit {
            return Err(FileError::TooLarge {
                path: path.to_path_buf(),
                kind,
                size: meta.len(),
                limit,
            });
        }
        Ok(())
    };
    check(&meta)?;
    let file = File::open(path).map_err(io)?;
    // The path may have been replaced between the two looks.
    check(&file.metadata().map_err(io)?)?;
    Ok(file)
}

/// A reader of a file opened by [`open_reader`]: it fails with an error
/// naming the bound as soon as more than `limit` bytes have been read (the
/// file grew after it was opened).
#[derive(Debug)]
pub struct BoundedFile {
    inner: io::Take<File>,
    limit: u64,
    kind: &'static str,
}

impl Read for BoundedFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if self.inner.limit() == 0 && n > 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "grew past the {} limit for {} files while it was read",
                    Bytes(self.limit),
                    self.kind
                ),
            ));
        }
        Ok(n)
    }
}

/// [`open_regular`], as a reader that stays within the bound while reading.
pub fn open_reader(path: &Path, kind: &'static str, limit: u64) -> Result<BoundedFile, FileError> {
    let file = open_regular(path, kind, limit)?;
    Ok(BoundedFile {
        inner: file.take(limit + 1),
        limit,
        kind,
    })
}

/// Reads a regular file of at most `limit` bytes whole. The read itself is
/// bounded too, so a file that grows while it is read is still refused.
pub fn read_bounded(path: &Path, kind: &'static str, limit: u64) -> Result<Vec<u8>, FileError> {
    let file = open_regular(path, kind, limit)?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| FileError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    if bytes.len() as u64 > limit {
        return Err(FileError::TooLarge {
            path: path.to_path_buf(),
            kind,
            size: bytes.len() as u64,
            limit,
        });
    }
    Ok(bytes)
}

/// [`read_bounded`], as UTF-8 text.
pub fn read_text(path: &Path, kind: &'static str, limit: u64) -> Result<String, FileError> {
    let bytes = read_bounded(path, kind, limit)?;
    String::from_utf8(bytes).map_err(|e| FileError::NotText {
        path: path.to_path_buf(),
        source: e.utf8_error(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str, bytes: &[u8]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("busbar-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn a_regular_file_within_the_bound_is_read() {
        let p = temp("ok.txt", b"hello");
        assert_eq!(read_text(&p, "scenario", 5).unwrap(), "hello");
    }

    #[test]
    fn a_file_over_the_bound_names_file_and_bound() {
        let p = temp("big.txt", &[b'x'; 2048]);
        let e = read_text(&p, "scenario", 1024).unwrap_err();
        assert!(matches!(e, FileError::TooLarge { size: 2048, .. }), "{e:?}");
        let msg = e.to_string();
        assert!(
            msg.contains("big.txt") && msg.contains("1 KiB") && msg.contains("scenario"),
            "{msg}"
        );
    }

    #[test]
    fn a_directory_is_refused() {
        let e = read_text(&std::env::temp_dir(), "scenario", 1024).unwrap_err();
        assert!(
            matches!(
                e,
                FileError::NotRegular {
                    what: "a directory",
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn dev_zero_is_refused_without_reading() {
        let e = read_text(Path::new("/dev/zero"), "profile", 1 << 20).unwrap_err();
        assert!(
            matches!(
                e,
                FileError::NotRegular {
                    what: "a device",
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("/dev/zero"));
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let p = temp("bin.txt", &[0xff, 0xfe]);
        assert!(matches!(
            read_text(&p, "scenario", 10),
            Err(FileError::NotText { .. })
        ));
    }

    #[test]
    fn a_missing_file_names_the_path() {
        let e = read_text(Path::new("/no/such/file.toml"), "scenario", 10).unwrap_err();
        assert!(e.to_string().starts_with("/no/such/file.toml: "), "{e}");
    }
}
