//! The last-known-good policy on disk: every applied version is written,
//! atomically, so that a restart while the control plane is unreachable
//! still enforces the newest policy this instance saw (fail static).

use shared::protocol::PolicyEnvelope;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `envelope` to `path` atomically: a temporary file in the same
/// directory, flushed to disk, then renamed over the old copy, and the
/// directory synced so that the rename itself survives a crash. A reader
/// sees the old file or the new one, never half of either.
pub fn save(path: &Path, envelope: &PolicyEnvelope) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(envelope).map_err(std::io::Error::other)?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = PathBuf::from(path);
    tmp.set_extension(format!("tmp-{}", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&json)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    // Not every platform can open a directory to sync it; the rename has
    // still happened, so this is best effort.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Reads the copy at `path`; `None` if there is none or it does not parse
/// (a corrupt copy is ignored rather than trusted).
pub fn load(path: &Path) -> Option<PolicyEnvelope> {
    let bytes = std::fs::read(path).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(e) => Some(e),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "ignoring an unreadable last-known-good policy");
            None
        }
    }
}

/// The newer of two envelopes by version; the server's on a tie.
pub fn newest(
    disk: Option<PolicyEnvelope>,
    server: Option<PolicyEnvelope>,
) -> Option<PolicyEnvelope> {
    match (disk, server) {
        (Some(d), Some(s)) => Some(if d.version > s.version { d } else { s }),
        (d, s) => s.or(d),
    }
}
