//! Checks, before the first connect, that every output file of a run (`--json`, `--csv`,
//! `--html`, `--hlog`) can be created, so that a typo in a path fails in a second with exit 2
//! instead of after an hour's run with exit 1 and no report.
//!
//! Nothing is left behind that the run would not have written: an existing file is opened for
//! appending (neither truncated nor changed) and closed; a missing one is created and removed
//! again, only when this check created it. Missing directories are created, as the run would
//! create them when it writes (Locust creates its `--csv` directory too); when a check fails,
//! the directories made for it are removed again (only those, and only when still empty).

use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::{invalid, ConfigError};
use crate::plan::Plan;

/// Every output file of `plan` can be created; else one line naming the setting, the path
/// and the OS error.
pub fn check_outputs(plan: &Plan) -> Result<(), ConfigError> {
    let mut files: Vec<(&'static str, &Path, PathBuf)> = Vec::new();
    if let Some(path) = &plan.json_path {
        files.push(("json", path, path.clone()));
    }
    if let Some(prefix) = &plan.csv_prefix {
        for path in crate::report::csv::paths(prefix) {
            files.push(("csv", prefix, path));
        }
    }
    if let Some(path) = &plan.hlog_path {
        files.push(("hlog", path, path.clone()));
    }
    if let Some(path) = &plan.html_path {
        files.push(("html", path, path.clone()));
    }
    let mut made_dirs = Vec::new();
    for (name, given, file) in &files {
        if let Err(problem) = check_file(file, &mut made_dirs) {
            for dir in made_dirs.iter().rev() {
                let _ = std::fs::remove_dir(dir);
            }
            let source = plan
                .sources
                .iter()
                .find(|source| source.name == *name)
                .map_or_else(|| format!("--{name}"), |source| source.place.clone());
            let source = match source.starts_with("--") || source.starts_with("MQBLAST_") {
                true => source,
                false => format!("{source}: {name} ="),
            };
            return Err(invalid(format!(
                "{source} {}: cannot write {}: {problem}",
                super::shown(&given.display().to_string()),
                super::shown(&file.display().to_string())
            )));
        }
    }
    Ok(())
}

/// `file` can be opened for writing; its missing directories are created and recorded in
/// `made_dirs` (outermost first).
fn check_file(file: &Path, made_dirs: &mut Vec<PathBuf>) -> Result<(), String> {
    if let Some(dir) = file.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        make_dirs(dir, made_dirs)?;
    }
    match OpenOptions::new().append(true).open(file) {
        Ok(_) => return Ok(()),
        Err(err) if err.kind() == ErrorKind::NotFound => {}
        Err(err) => return Err(err.to_string()),
    }
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(file)
        .map_err(|err| err.to_string())?;
    std::fs::remove_file(file).map_err(|err| format!("created, but cannot remove it: {err}"))
}

/// Create `dir` and its missing parents, recording each one created.
fn make_dirs(dir: &Path, made_dirs: &mut Vec<PathBuf>) -> Result<(), String> {
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(path) = at.filter(|path| !path.as_os_str().is_empty()) {
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => break,
            Ok(_) => return Err(format!("{} is not a directory", path.display())),
            Err(err) if err.kind() == ErrorKind::NotFound => missing.push(path.to_path_buf()),
            Err(err) => return Err(format!("{}: {err}", path.display())),
        }
        at = path.parent();
    }
    for path in missing.into_iter().rev() {
        std::fs::create_dir(&path)
            .map_err(|err| format!("cannot create directory {}: {err}", path.display()))?;
        made_dirs.push(path);
    }
    Ok(())
}
