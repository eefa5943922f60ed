//! Temporary folders. Every test module shares one process, so a folder named after the process
//! id alone would be shared by two tests: each folder's name is [`unique`](super::unique).

use std::path::{Path, PathBuf};

/// A new empty folder under the system's temporary folder, removed (with what is in it) on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

impl TempDir {
    /// `gcb-NAME-…` under the system's temporary folder.
    pub fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(super::unique(&format!("gcb-{name}")));
        std::fs::create_dir_all(&path).unwrap();
        TempDir { path }
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A path inside the folder.
    pub fn join(&self, relative: impl AsRef<Path>) -> PathBuf {
        self.path.join(relative)
    }

    /// Writes `text` to `relative` (a config, a template, …) and returns its path.
    pub fn write(&self, relative: impl AsRef<Path>, text: &str) -> PathBuf {
        let path = self.join(relative);
        std::fs::write(&path, text).unwrap();
        path
    }
}
