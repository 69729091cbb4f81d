//! A real `redis-server` per test, never a mock: the fleet's shared state is
//! only as trustworthy as the server it is tested against. Each server runs
//! on its own free loopback port with its own temp folder, keeps nothing on
//! disk, and can be killed, restarted on the same port, or hung (SIGSTOP).
//! Every wait is bounded; readiness is polled, never slept for.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long a server may take to answer PING after it was started, or to
/// die after SIGKILL, on a loaded 2-core machine.
const STARTUP_LIMIT: Duration = Duration::from_secs(10);

/// How often readiness and exit are polled.
const POLL: Duration = Duration::from_millis(20);

/// How many fresh ports [`RedisServer::start`] tries: another process may
/// take a free port between our probe and the server's bind.
const PORT_ATTEMPTS: usize = 5;

/// How long one command to the server may take, so a hung (paused) server
/// fails a test instead of stalling it.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// The `redis-server` binary: on PATH or at /usr/bin; installed once with
/// `.ci/install-redis` when missing.
fn redis_server_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        if let Some(found) = find_redis_server() {
            return found;
        }
        let script = format!("{}/.ci/install-redis", env!("CARGO_MANIFEST_DIR"));
        let status = Command::new("bash")
            .arg(&script)
            .status()
            .expect("run .ci/install-redis");
        assert!(
            status.success(),
            "redis-server is missing and .ci/install-redis could not install it"
        );
        find_redis_server().expect("redis-server installed (on PATH or at /usr/bin/redis-server)")
    })
}

fn find_redis_server() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("redis-server"))
        .chain([PathBuf::from("/usr/bin/redis-server")])
        .find(|p| p.is_file())
}

/// A loopback port no one listened on a moment ago.
fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a loopback port");
    listener.local_addr().expect("local address").port()
}

/// One reply in the Redis protocol (RESP2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resp {
    Simple(String),
    Error(String),
    Integer(i64),
    /// `None`: the null bulk string.
    Bulk(Option<String>),
    /// `None`: the null array.
    Array(Option<Vec<Resp>>),
}

impl Resp {
    /// A simple textual rendering: bulk and simple strings as they are,
    /// integers in decimal, `(nil)` for null, an array's items one per line,
    /// an error prefixed `ERR:`.
    pub fn render(&self) -> String {
        match self {
            Resp::Simple(s) | Resp::Bulk(Some(s)) => s.clone(),
            Resp::Error(e) => format!("ERR:{e}"),
            Resp::Integer(n) => n.to_string(),
            Resp::Bulk(None) | Resp::Array(None) => "(nil)".to_owned(),
            Resp::Array(Some(items)) => items.iter().map(Resp::render).collect::<Vec<_>>().join("\n"),
        }
    }
}

/// Reads one reply.
fn read_reply(reader: &mut impl BufRead) -> std::io::Result<Resp> {
    let bad = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let line = line
        .strip_suffix("\r\n")
        .ok_or_else(|| bad(format!("no CRLF: {line:?}")))?;
    let (kind, rest) = line.split_at_checked(1).ok_or_else(|| bad("empty reply line".into()))?;
    let number = |rest: &str| rest.parse::<i64>().map_err(|_| bad(format!("not a number: {rest:?}")));
    Ok(match kind {
        "+" => Resp::Simple(rest.to_owned()),
        "-" => Resp::Error(rest.to_owned()),
        ":" => Resp::Integer(number(rest)?),
        "$" => match number(rest)? {
            n if n < 0 => Resp::Bulk(None),
            n => {
                let mut bytes = vec![0u8; n as usize + 2];
                reader.read_exact(&mut bytes)?;
                bytes.truncate(n as usize);
                Resp::Bulk(Some(String::from_utf8_lossy(&bytes).into_owned()))
            }
        },
        "*" => match number(rest)? {
            n if n < 0 => Resp::Array(None),
            n => Resp::Array(Some((0..n).map(|_| read_reply(reader)).collect::<Result<_, _>>()?)),
        },
        other => return Err(bad(format!("unknown reply type {other:?}"))),
    })
}

/// `args` as a RESP array of bulk strings.
fn encode(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A running `redis-server`; killed when dropped.
pub struct RedisServer {
    port: u16,
    /// A second port serving TLS (tests/fixtures/tls: `server.pem`, signed by `ca.pem`).
    tls_port: Option<u16>,
    password: Option<String>,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl RedisServer {
    /// A server on a free loopback port, answering PING.
    pub fn start() -> RedisServer {
        Self::start_inner(None, false)
    }

    /// Like [`start`](Self::start), also serving TLS on a port of its own
    /// ([`tls_url`](Self::tls_url)) with the test certificate for `localhost`.
    pub fn start_with_tls() -> RedisServer {
        Self::start_inner(None, true)
    }

    /// Like [`start`](Self::start), requiring `AUTH password` (`requirepass`);
    /// [`command`](Self::command) authenticates itself.
    pub fn start_with_password(password: &str) -> RedisServer {
        Self::start_inner(Some(password.to_owned()), false)
    }

    fn start_inner(password: Option<String>, tls: bool) -> RedisServer {
        let mut server = RedisServer {
            port: 0,
            tls_port: None,
            password,
            dir: tempfile::tempdir().expect("temp folder for redis-server"),
            child: None,
        };
        for _ in 0..PORT_ATTEMPTS {
            server.port = free_port();
            server.tls_port = tls.then(free_port);
            if server.launch_and_wait() {
                return server;
            }
        }
        panic!(
            "redis-server did not come up on any of {PORT_ATTEMPTS} free ports; its log:\n{}",
            server.log()
        );
    }

    /// The URL a gateway is configured with: `redis://127.0.0.1:PORT/0`
    /// (`redis://:PASSWORD@127.0.0.1:PORT/0` with a password).
    pub fn url(&self) -> String {
        match &self.password {
            Some(pw) => format!("redis://:{pw}@127.0.0.1:{}/0", self.port),
            None => format!("redis://127.0.0.1:{}/0", self.port),
        }
    }

    /// `rediss://localhost:TLS_PORT/0`, for a server started with TLS.
    pub fn tls_url(&self) -> String {
        format!("rediss://localhost:{}/0", self.tls_port.expect("started with TLS"))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// Everything the server wrote, across restarts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }

    /// Kills the server (SIGKILL, as a crash) and waits for it to be gone:
    /// afterwards connecting to its port fails.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // A paused server dies of SIGKILL too.
            let _ = child.kill();
            let deadline = Instant::now() + STARTUP_LIMIT;
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() >= deadline => {
                        panic!("redis-server (pid {}) still running after SIGKILL", child.id())
                    }
                    Ok(None) => std::thread::sleep(POLL),
                }
            }
        }
    }

    /// Starts the server again on the same port (killing it first if it
    /// runs), so the same URL reaches it; its data is gone. Retries the bind
    /// until a deadline; returns once it answers PING.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + STARTUP_LIMIT;
        while Instant::now() < deadline {
            if self.launch_and_wait() {
                return;
            }
            std::thread::sleep(POLL);
        }
        panic!(
            "redis-server did not come back on port {} within {STARTUP_LIMIT:?}; its log:\n{}",
            self.port,
            self.log()
        );
    }

    /// Hangs the server (SIGSTOP): connections are accepted by the kernel
    /// but nothing is answered until [`resume`](Self::resume).
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// Lets a paused server run again (SIGCONT).
    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, name: &str) {
        let child = self.child.as_ref().expect("redis-server running");
        let status = Command::new("kill")
            .args(["-s", name, &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -s {name} {} failed", child.id());
    }

    /// Sends one command and renders its reply (see [`Resp::render`]);
    /// panics when the server cannot be reached or does not answer in time.
    pub fn command(&self, args: &[&str]) -> String {
        self.request(args)
            .unwrap_or_else(|e| panic!("redis {args:?} on port {}: {e}", self.port))
            .render()
    }

    /// Sends one command on a fresh connection (authenticated first when the
    /// server has a password) and reads its reply.
    pub fn request(&self, args: &[&str]) -> std::io::Result<Resp> {
        let stream = TcpStream::connect_timeout(&self.addr(), COMMAND_TIMEOUT)?;
        stream.set_read_timeout(Some(COMMAND_TIMEOUT))?;
        stream.set_write_timeout(Some(COMMAND_TIMEOUT))?;
        let mut writer = stream.try_clone()?;
        let mut reader = BufReader::new(stream);
        if let Some(pw) = &self.password {
            writer.write_all(&encode(&["AUTH", pw]))?;
            match read_reply(&mut reader)? {
                Resp::Simple(ok) if ok == "OK" => {}
                other => return Err(std::io::Error::other(format!("AUTH refused: {other:?}"))),
            }
        }
        writer.write_all(&encode(args))?;
        read_reply(&mut reader)
    }

    /// The keys matching `pattern` (`KEYS`), sorted.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        match self.request(&["KEYS", pattern]) {
            Ok(Resp::Array(Some(items))) => {
                let mut keys: Vec<String> = items.iter().map(Resp::render).collect();
                keys.sort();
                keys
            }
            other => panic!("KEYS {pattern}: {other:?}"),
        }
    }

    /// A string key's value; `None` when it does not exist.
    pub fn get(&self, key: &str) -> Option<String> {
        match self.request(&["GET", key]) {
            Ok(Resp::Bulk(value)) => value,
            other => panic!("GET {key}: {other:?}"),
        }
    }

    pub fn set(&self, key: &str, value: &str) {
        let reply = self.command(&["SET", key, value]);
        assert_eq!(reply, "OK", "SET {key}");
    }

    /// Launches `redis-server` on `self.port` and waits until it answers
    /// PING; `false` when it exited first (its port taken) or never answered
    /// within the limit (then it is killed).
    fn launch_and_wait(&mut self) -> bool {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("redis.log"))
            .expect("redis-server log file");
        let mut command = Command::new(redis_server_binary());
        command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path());
        if let Some(pw) = &self.password {
            command.args(["--requirepass", pw]);
        }
        if let Some(tls_port) = self.tls_port {
            let fixture = |name: &str| format!("{}/tests/fixtures/tls/{name}", env!("CARGO_MANIFEST_DIR"));
            command
                .args(["--tls-port", &tls_port.to_string()])
                .args(["--tls-cert-file", &fixture("server.pem")])
                .args(["--tls-key-file", &fixture("server.key")])
                .args(["--tls-ca-cert-file", &fixture("ca.pem")])
                .args(["--tls-auth-clients", "no"]);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", redis_server_binary().display()));
        self.child = Some(child);
        let deadline = Instant::now() + STARTUP_LIMIT;
        while Instant::now() < deadline {
            let exited = self.child.as_mut().and_then(|c| c.try_wait().ok()).flatten();
            if exited.is_some() {
                self.child = None;
                return false;
            }
            if self.answers_ping() {
                return true;
            }
            std::thread::sleep(POLL);
        }
        self.kill();
        false
    }

    /// Whether our server answers `PING` with `PONG` right now: the one we
    /// started, not another test's that took the port when ours could not.
    fn answers_ping(&self) -> bool {
        let Some(pid) = self.child.as_ref().map(Child::id) else {
            return false;
        };
        if !matches!(self.request(&["PING"]), Ok(Resp::Simple(pong)) if pong == "PONG") {
            return false;
        }
        match self.request(&["INFO", "server"]) {
            Ok(Resp::Bulk(Some(info))) => info.lines().any(|l| l.trim() == format!("process_id:{pid}")),
            _ => false,
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            // A paused server must not outlive the test either.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
