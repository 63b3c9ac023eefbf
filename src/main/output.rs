//! Where the `busbar` binary writes: standard output and output files.
//!
//! - [`Stdout`]: standard output, locked. A closed pipe (`busbar ... | head`)
//!   ends the output quietly; any other write error is an error that says
//!   "standard output". Nothing here panics on a failed write.
//! - [`OutputFile`]: an output file (`run --trace`, `export -o`). It is
//!   written to a temporary file beside it (`.NAME.tmp-PID`), synced, and
//!   renamed into place only by [`OutputFile::commit`]; dropped without a
//!   commit, the temporary file is removed and an existing file is left as
//!   it was. An output that is one of the command's inputs is refused
//!   before anything is written. A path that exists and is not a regular
//!   file (a device such as `/dev/null`, a FIFO) is written in place: it
//!   cannot be replaced by a rename, and there is no old content to keep.
//! - [`Watch`]: a writer that remembers its first error, so that an error
//!   coming back from the library through a writer can be told apart from
//!   an error reading the input, and the right file named.
//!
//! Every error message names the file (or "standard output").

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// What a failed write means for the command.
pub enum WriteFailure {
    /// The reader of standard output went away: stop writing, quietly.
    ClosedPipe,
    /// A real error, with its message (naming the file).
    Error(String),
}

/// Standard output, locked for the whole command.
pub struct Stdout {
    out: io::StdoutLock<'static>,
    /// The reader closed the pipe: later writes are skipped.
    closed: bool,
}

impl Stdout {
    pub fn new() -> Stdout {
        Stdout {
            out: io::stdout().lock(),
            closed: false,
        }
    }

    /// What `write!` / `writeln!` call: writes unless the pipe was closed.
    /// A closed pipe is not an error; any other failure is, naming
    /// standard output.
    pub fn write_fmt(&mut self, args: fmt::Arguments<'_>) -> Result<(), String> {
        if self.closed {
            return Ok(());
        }
        let r = self.out.write_fmt(args);
        self.check(r)
    }

    /// Flushes; the same rules as a write.
    pub fn finish(mut self) -> Result<(), String> {
        if self.closed {
            return Ok(());
        }
        let r = self.out.flush();
        self.check(r)
    }

    fn check(&mut self, r: io::Result<()>) -> Result<(), String> {
        match r {
            Ok(()) => Ok(()),
            Err(e) => match stdout_failure(e) {
                WriteFailure::ClosedPipe => {
                    self.closed = true;
                    Ok(())
                }
                WriteFailure::Error(m) => Err(m),
            },
        }
    }
}

/// How a write error on standard output is reported.
pub fn stdout_failure(e: io::Error) -> WriteFailure {
    if e.kind() == io::ErrorKind::BrokenPipe {
        WriteFailure::ClosedPipe
    } else {
        WriteFailure::Error(format!("writing to standard output: {e}"))
    }
}

/// Writes to standard error, ignoring errors: there is nowhere left to
/// report them, and the exit code still says what happened.
pub fn to_stderr(args: fmt::Arguments<'_>) {
    let mut err = io::stderr().lock();
    let _ = err.write_fmt(args);
    let _ = err.flush();
}

/// A writer that passes everything through and keeps its first error
/// (the caller gets a copy of it).
pub struct Watch<W> {
    inner: W,
    error: Option<io::Error>,
}

impl<W: Write> Watch<W> {
    pub fn new(inner: W) -> Watch<W> {
        Watch { inner, error: None }
    }

    /// The first write or flush error, if any.
    pub fn take_error(&mut self) -> Option<io::Error> {
        self.error.take()
    }

    fn keep(&mut self, e: io::Error) -> io::Error {
        if e.kind() == io::ErrorKind::Interrupted {
            return e;
        }
        let copy = io::Error::new(e.kind(), e.to_string());
        self.error.get_or_insert(e);
        copy
    }
}

impl<W: Write> Write for Watch<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf).map_err(|e| self.keep(e))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().map_err(|e| self.keep(e))
    }
}

/// Refuses an output path that is one of the inputs: the same path once
/// canonicalized (an output that does not exist yet: its canonical parent
/// and file name), or, on Unix, the same file (device and inode) through a
/// hard link or a symbolic link.
pub fn refuse_inputs(out: &Path, inputs: &[&Path]) -> Result<(), String> {
    for input in inputs {
        if same_file(out, input) {
            return Err(format!(
                "{}: is also an input ({}); choose another output path",
                out.display(),
                input.display()
            ));
        }
    }
    Ok(())
}

fn same_file(out: &Path, input: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(a), Ok(b)) = (fs::metadata(out), fs::metadata(input))
            && a.dev() == b.dev()
            && a.ino() == b.ino()
        {
            return true;
        }
    }
    match (canonical(out), fs::canonicalize(input)) {
        (Some(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The canonical form of `path`, also for a file that does not exist yet
/// (its canonical directory joined with its name).
fn canonical(path: &Path) -> Option<PathBuf> {
    if let Ok(p) = fs::canonicalize(path) {
        return Some(p);
    }
    let name = path.file_name()?;
    let parent = fs::canonicalize(parent_dir(path)).ok()?;
    Some(parent.join(name))
}

/// The directory a path is in (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// An output file being written. See the module docs.
pub struct OutputFile {
    /// The path as given (what messages show).
    shown: PathBuf,
    /// Where the file ends up (a symbolic link to an existing file is
    /// followed, so the link stays and its target is replaced).
    dest: PathBuf,
    /// The temporary file renamed to `dest` on commit; `None` when writing
    /// in place (a device or a FIFO), or once committed.
    tmp: Option<PathBuf>,
    /// A handle to the file, to sync it before the rename.
    file: File,
}

impl OutputFile {
    /// Prepares to write `path`, refusing it if it is one of `inputs`.
    /// Returns the guard and a handle to write through (the same file).
    pub fn create(path: &Path, inputs: &[&Path]) -> Result<(OutputFile, File), String> {
        let shown = path.to_path_buf();
        let named = |e: io::Error| format!("{}: {e}", path.display());
        refuse_inputs(path, inputs)?;
        let (dest, old) = match fs::metadata(path) {
            Ok(m) if m.is_dir() => {
                return Err(format!(
                    "{}: is a directory; give the path of a file",
                    path.display()
                ));
            }
            Ok(m) if !m.is_file() => {
                // A device or a FIFO: write to it directly.
                let file = OpenOptions::new().write(true).open(path).map_err(named)?;
                let writer = file.try_clone().map_err(named)?;
                let guard = OutputFile {
                    dest: shown.clone(),
                    shown,
                    tmp: None,
                    file,
                };
                return Ok((guard, writer));
            }
            Ok(m) => {
                // Fail now, as writing in place would, if the file may not
                // be written (opening does not truncate it).
                OpenOptions::new().write(true).open(path).map_err(named)?;
                (fs::canonicalize(path).map_err(named)?, Some(m))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => (path.to_path_buf(), None),
            Err(e) => return Err(named(e)),
        };
        let name = dest
            .file_name()
            .ok_or_else(|| format!("{}: not a file name", path.display()))?;
        let mut tmp_name = OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".tmp-{}", std::process::id()));
        let tmp = parent_dir(&dest).join(tmp_name);
        let file = create_new(&tmp).map_err(|e| {
            format!(
                "{}: cannot create the temporary file {}: {e}",
                path.display(),
                tmp.display()
            )
        })?;
        let guard = OutputFile {
            shown,
            dest,
            tmp: Some(tmp),
            file,
        };
        if let Some(m) = old {
            // Best effort: the new file keeps the old one's permissions.
            let _ = guard.file.set_permissions(m.permissions());
        }
        let writer = guard.file.try_clone().map_err(named)?;
        Ok((guard, writer))
    }

    /// The path as given.
    pub fn path(&self) -> &Path {
        &self.shown
    }

    /// Puts the written file in place: syncs it and renames it over the
    /// destination. Everything must have been flushed to the handle first.
    pub fn commit(mut self) -> Result<(), String> {
        let Some(tmp) = self.tmp.take() else {
            return Ok(());
        };
        let named = |e: io::Error| format!("{}: {e}", self.shown.display());
        let done = self
            .file
            .sync_all()
            .and_then(|()| fs::rename(&tmp, &self.dest));
        if let Err(e) = done {
            let _ = fs::remove_file(&tmp);
            return Err(named(e));
        }
        // Best effort: make the rename itself durable.
        #[cfg(unix)]
        if let Ok(dir) = File::open(parent_dir(&self.dest)) {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

impl Drop for OutputFile {
    /// Not committed: the temporary file goes, any old file stays.
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            let _ = fs::remove_file(tmp);
        }
    }
}

/// Creates `path`, which must not exist; a leftover of a crashed process
/// with the same id is replaced.
fn create_new(path: &Path) -> io::Result<File> {
    let open = || OpenOptions::new().write(true).create_new(true).open(path);
    match open() {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            fs::remove_file(path)?;
            open()
        }
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> tempfile::TempDir {
        tempfile::TempDir::new().unwrap()
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-"))
            .collect()
    }

    #[test]
    fn a_committed_output_replaces_the_old_file() {
        let d = dir();
        let p = d.path().join("out.txt");
        fs::write(&p, "old").unwrap();
        let (guard, mut w) = OutputFile::create(&p, &[]).unwrap();
        w.write_all(b"new").unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "old", "written in place");
        guard.commit().unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "new");
        assert!(leftovers(d.path()).is_empty());
    }

    #[test]
    fn an_output_dropped_without_commit_leaves_the_old_file() {
        let d = dir();
        let p = d.path().join("out.txt");
        fs::write(&p, "old").unwrap();
        let (guard, mut w) = OutputFile::create(&p, &[]).unwrap();
        w.write_all(b"half").unwrap();
        drop(guard);
        assert_eq!(fs::read_to_string(&p).unwrap(), "old");
        assert!(leftovers(d.path()).is_empty());
        // And a new file is not created at all.
        let q = d.path().join("new.txt");
        let (guard, _) = OutputFile::create(&q, &[]).unwrap();
        drop(guard);
        assert!(!q.exists());
        assert!(leftovers(d.path()).is_empty());
    }

    #[test]
    fn an_input_is_refused_by_any_name() {
        let d = dir();
        let p = d.path().join("in.toml");
        fs::write(&p, "x").unwrap();
        let sub = d.path().join("sub");
        fs::create_dir(&sub).unwrap();
        let dotted = sub.join("..").join("in.toml");
        let e = OutputFile::create(&dotted, &[&p]).err().unwrap();
        assert!(e.contains("is also an input"), "{e}");
        #[cfg(unix)]
        {
            let hard = d.path().join("hard.toml");
            fs::hard_link(&p, &hard).unwrap();
            let soft = d.path().join("soft.toml");
            std::os::unix::fs::symlink(&p, &soft).unwrap();
            for link in [&hard, &soft] {
                let e = OutputFile::create(link, &[&p]).err().unwrap();
                assert!(e.contains("is also an input"), "{e}");
            }
        }
        assert_eq!(fs::read_to_string(&p).unwrap(), "x");
        assert!(leftovers(d.path()).is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn a_symbolic_link_keeps_pointing_at_the_new_file() {
        let d = dir();
        let target = d.path().join("target.txt");
        fs::write(&target, "old").unwrap();
        let link = d.path().join("link.txt");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let (guard, mut w) = OutputFile::create(&link, &[]).unwrap();
        w.write_all(b"new").unwrap();
        guard.commit().unwrap();
        assert!(fs::symlink_metadata(&link).unwrap().is_symlink());
        assert_eq!(fs::read_to_string(&target).unwrap(), "new");
    }

    #[test]
    fn a_directory_is_refused() {
        let d = dir();
        let e = OutputFile::create(d.path(), &[]).err().unwrap();
        assert!(e.contains("is a directory"), "{e}");
    }
}
