//! A `coffer serve` child process on a free loopback port with a temporary data dir, for the
//! commands that need a real server beside them (`bench`, `demo`).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

pub struct Server {
    pub child: Child,
    pub addr: String,
    _dir: TempDir,
}

/// A temporary directory removed on drop.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `coffer serve` (this executable) with the given root credentials and log filter.
pub fn start_server(
    purpose: &str,
    key_id: &str,
    secret: &str,
    log: &str,
) -> Result<Server, String> {
    let dir = std::env::temp_dir().join(format!("coffer-{purpose}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let dir = TempDir(dir);
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&dir.0)
        .env("COFFER_ACCOUNT_ID", "123456789012")
        .env("COFFER_ROOT_ACCESS_KEY_ID", key_id)
        .env("COFFER_ROOT_SECRET_ACCESS_KEY", secret)
        .env("COFFER_LOG", log)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| e.to_string())?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines
            .next()
            .ok_or("server exited")?
            .map_err(|e| e.to_string())?;
        if let Some(rest) = line.strip_prefix("Coffer listening on http://") {
            break rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Ok(Server {
        child,
        addr,
        _dir: dir,
    })
}
