//! The real `redis-server` the fleet tests run against (`support::redis`):
//! it answers, forgets nothing while it runs, can be crashed, comes back on
//! the same URL, hangs when paused, and holds its password.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::redis::RedisServer;

#[test]
fn a_started_server_keeps_what_is_set_and_renders_replies() {
    let redis = RedisServer::start();
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{}/0", redis.port()));
    assert_eq!(redis.command(&["PING"]), "PONG");
    assert_eq!(redis.get("fleet:missing"), None);
    redis.set("fleet:a", "one two\r\nthree");
    redis.set("fleet:b", "2");
    assert_eq!(redis.get("fleet:a").as_deref(), Some("one two\r\nthree"));
    assert_eq!(redis.command(&["INCR", "fleet:b"]), "3");
    assert_eq!(redis.command(&["GET", "fleet:missing"]), "(nil)");
    assert_eq!(redis.keys("fleet:*"), vec!["fleet:a", "fleet:b"]);
    assert_eq!(redis.command(&["MGET", "fleet:b", "fleet:missing"]), "3\n(nil)");
    assert!(redis.command(&["NO-SUCH-COMMAND"]).starts_with("ERR:"));
}

#[test]
fn two_servers_run_apart_on_their_own_ports() {
    let (one, two) = (RedisServer::start(), RedisServer::start());
    assert_ne!(one.port(), two.port());
    one.set("k", "one");
    assert_eq!(two.get("k"), None);
}

#[test]
fn a_killed_server_refuses_connections() {
    let mut redis = RedisServer::start();
    redis.set("k", "v");
    redis.kill();
    assert!(
        TcpStream::connect_timeout(&redis.addr(), Duration::from_secs(2)).is_err(),
        "a killed server's port still accepts connections"
    );
    assert!(redis.request(&["PING"]).is_err());
}

#[test]
fn a_restarted_server_answers_on_the_same_port_and_url_with_no_data() {
    let mut redis = RedisServer::start();
    let (port, url) = (redis.port(), redis.url());
    redis.set("k", "v");
    redis.kill();
    redis.restart();
    assert_eq!((redis.port(), redis.url()), (port, url));
    assert_eq!(redis.command(&["PING"]), "PONG");
    assert_eq!(redis.get("k"), None, "nothing is kept across a restart");
    // A restart of a running server crashes it first.
    redis.set("k", "again");
    redis.restart();
    assert_eq!(redis.get("k"), None);
}

#[test]
fn a_paused_server_hangs_until_resumed() {
    let redis = RedisServer::start();
    redis.pause();
    let started = Instant::now();
    let hung = redis.request(&["PING"]);
    assert!(hung.is_err(), "a paused server answered: {hung:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "failed fast instead of hanging"
    );
    redis.resume();
    assert_eq!(redis.command(&["PING"]), "PONG");
}

#[test]
fn a_password_server_refuses_strangers_and_admits_the_helper() {
    let redis = RedisServer::start_with_password("fleet-secret");
    assert_eq!(
        redis.url(),
        format!("redis://:fleet-secret@127.0.0.1:{}/0", redis.port())
    );
    redis.set("k", "v");
    assert_eq!(redis.get("k").as_deref(), Some("v"));
    // Without AUTH, the server refuses.
    let mut stranger = TcpStream::connect(redis.addr()).unwrap();
    stranger.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stranger.write_all(b"PING\r\n").unwrap();
    let mut line = String::new();
    BufReader::new(stranger).read_line(&mut line).unwrap();
    assert!(line.starts_with("-NOAUTH"), "{line:?}");
}
