//! A real `nats-server -js` for the bridge's tests (`tests/bridge.rs`) and
//! its benchmark (`benches/bridge.rs`, which includes this file with
//! `#[path]`): found on `PATH` (or in /usr/sbin, /usr/bin, /usr/local/bin),
//! started on a free loopback port with a temporary store directory, killed
//! and its store removed when dropped.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The `nats-server` binary, if this machine has one.
pub fn nats_server_bin() -> Option<PathBuf> {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/usr/bin", "/usr/local/bin"])
        .map(|d| Path::new(d).join("nats-server"))
        .find(|p| p.is_file())
}

/// A loopback port nobody listens on (as of now).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `nats-server -js` on a loopback port, killed when dropped.
pub struct Server {
    bin: PathBuf,
    pub port: u16,
    dir: PathBuf,
    max_payload: Option<usize>,
    child: Option<Child>,
}

impl Server {
    /// Starts a server and waits (at most 20 s) until it listens;
    /// `max_payload` sets the server's largest message, in bytes.
    pub fn start(bin: PathBuf, max_payload: Option<usize>) -> Server {
        static SERVERS: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "mmring-nats-{}-{}",
            std::process::id(),
            SERVERS.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut s = Server {
            bin,
            port: free_port(),
            dir,
            max_payload,
            child: None,
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let conf = self.dir.join("server.conf");
        let mut text = format!(
            "listen: 127.0.0.1:{}\njetstream {{\n  store_dir: \"{}\"\n}}\n",
            self.port,
            self.dir.join("store").display()
        );
        if let Some(m) = self.max_payload {
            text.push_str(&format!("max_payload: {m}\n"));
        }
        std::fs::write(&conf, text).unwrap();
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not listen on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The bridge's URL for `subject` on this server.
    pub fn url(&self, subject: &str) -> String {
        format!("nats://127.0.0.1:{}/{subject}", self.port)
    }

    /// Stops the server (SIGTERM: a clean shutdown) and starts it again on
    /// the same port and store.
    pub fn restart(&mut self) {
        let mut c = self.child.take().unwrap();
        // SAFETY: a signal to our own child, not yet reaped.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let _ = c.wait();
        std::thread::sleep(Duration::from_millis(300));
        self.spawn();
    }

    /// The number of messages in the stream of `subject`.
    pub fn stream_messages(&self, subject: &str) -> u64 {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let c = async_nats::connect(format!("127.0.0.1:{}", self.port))
                .await
                .unwrap();
            let js = async_nats::jetstream::new(c);
            let name = js.stream_by_subject(subject.to_string()).await.unwrap();
            let mut s = js.get_stream(&name).await.unwrap();
            s.info().await.unwrap().state.messages
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
