//! The audit trail: one JSON line per API request (docs/operations.md,
//! "Audit"), written by a thread of its own before the answer leaves, and
//! never holding a secret.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::mpsc;
#[cfg(feature = "test-util")]
use std::sync::Mutex;

use tokio::sync::oneshot;

use serde::{Deserialize, Serialize};

use crate::check::Check;

/// `[audit]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditSection {
    #[serde(default = "default_audit_file")]
    file: String,
}

fn default_audit_file() -> String {
    "-".to_string()
}

impl Default for AuditSection {
    fn default() -> Self {
        AuditSection {
            file: default_audit_file(),
        }
    }
}

impl AuditSection {
    /// Where audit lines go: `-` (stdout) or a path resolved against the config's folder.
    pub(crate) fn check(self, c: &mut Check) -> String {
        if self.file.is_empty() {
            c.bad("audit.file", "use \"-\" for stdout or a file path");
        }
        if self.file == "-" || self.file.is_empty() {
            self.file
        } else {
            c.resolve(Path::new(&self.file)).display().to_string()
        }
    }
}

/// The gateway's verdict on a request, as the audit names it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Verdict {
    /// Authorization allowed the call, whatever Connect then said.
    Allow,
    /// Refused before Connect was called.
    #[default]
    Deny,
}

/// One audit record. Identifiers only: no token, header or body.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct AuditRecord {
    pub(crate) ts: String,
    pub(crate) request_id: String,
    pub(crate) decision: Verdict,
    /// The deny reason (a policy reason, or the envelope code in lower case);
    /// the grant's name on allow.
    pub(crate) reason: Option<String>,
    pub(crate) issuer: Option<String>,
    pub(crate) subject: Option<String>,
    pub(crate) instance_id: Option<String>,
    pub(crate) contact_id: Option<String>,
    pub(crate) user_id: Option<String>,
    pub(crate) capabilities: Option<Vec<&'static str>>,
    pub(crate) client_token: Option<String>,
    /// The contact's agent, when a Connect-aware grant looked at the contact.
    pub(crate) agent_id: Option<String>,
    /// Lookups this request made to Connect (cache hits do not count).
    pub(crate) lookups: u32,
    /// True for `/contact/monitor/check`, which never calls MonitorContact.
    pub(crate) dry_run: bool,
    pub(crate) status: u16,
    pub(crate) code: &'static str,
    pub(crate) upstream_status: Option<u16>,
    pub(crate) aws_request_id: Option<String>,
    pub(crate) attempts: u32,
    pub(crate) duration_ms: f64,
    /// The trace id of a valid W3C `traceparent` from the caller, else null.
    pub(crate) trace_id: Option<String>,
}

/// Where the writer thread puts lines.
enum Target {
    Stdout,
    File { path: String, file: File },
}

impl Target {
    fn open_file(path: &str) -> std::io::Result<File> {
        OpenOptions::new().create(true).append(true).open(Path::new(path))
    }

    /// Writes a batch of whole lines in one call (for a file opened
    /// `O_APPEND`, one append at its end).
    fn write(&mut self, batch: &[u8]) -> std::io::Result<()> {
        match self {
            Target::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(batch).and_then(|_| out.flush())
            }
            Target::File { file, .. } => file.write_all(batch),
        }
    }

    /// Opens the file at its path again (after log rotation moved it).
    fn reopen(&mut self) {
        if let Target::File { path, file } = self {
            match Target::open_file(path) {
                Ok(fresh) => *file = fresh,
                Err(e) => {
                    tracing::error!(error = %e, path = %path, "the audit file could not be reopened; still writing to the old one")
                }
            }
        }
    }
}

/// What the request path asks of the writer thread.
enum Command {
    /// A line, and whom to tell once it is written.
    Line {
        request_id: String,
        line: Vec<u8>,
        written: oneshot::Sender<()>,
    },
    Reopen,
}

/// At most this many lines go out in one write.
const MAX_BATCH: usize = 256;

/// Audit lines are written by a thread of their own, so a slow disk never
/// blocks the threads that serve requests. A request waits (asynchronously)
/// until its line is written before its answer leaves; lines that arrive
/// while a write is under way go out together in the next one.
pub struct AuditWriter {
    commands: mpsc::Sender<Command>,
}

impl AuditWriter {
    fn start(mut target: Target) -> std::io::Result<AuditWriter> {
        let (commands, received) = mpsc::channel::<Command>();
        std::thread::Builder::new().name("cmg-audit".into()).spawn(move || {
            let mut batch = Vec::new();
            let mut waiting = Vec::with_capacity(MAX_BATCH);
            while let Ok(first) = received.recv() {
                let mut next = Some(first);
                while let Some(command) = next.take() {
                    match command {
                        Command::Line {
                            request_id,
                            line,
                            written,
                        } => {
                            batch.extend_from_slice(&line);
                            waiting.push((request_id, written));
                        }
                        Command::Reopen => {
                            // Lines before the rotation go to the old file.
                            write_batch(&mut target, &mut batch, &mut waiting);
                            target.reopen();
                        }
                    }
                    if waiting.len() < MAX_BATCH {
                        next = received.try_recv().ok();
                    }
                }
                write_batch(&mut target, &mut batch, &mut waiting);
            }
        })?;
        Ok(AuditWriter { commands })
    }
}

fn write_batch(target: &mut Target, batch: &mut Vec<u8>, waiting: &mut Vec<(String, oneshot::Sender<()>)>) {
    if batch.is_empty() {
        return;
    }
    if let Err(e) = target.write(batch) {
        for (request_id, _) in waiting.iter() {
            tracing::error!(error = %e, %request_id, "audit record could not be written");
        }
    }
    batch.clear();
    for (_, written) in waiting.drain(..) {
        let _ = written.send(());
    }
}

/// Where audit lines go.
pub enum AuditSink {
    /// Stdout or a file, through the writer thread.
    Writer(AuditWriter),
    /// Kept in memory, for tests.
    #[cfg(feature = "test-util")]
    Memory(Mutex<Vec<String>>),
}

impl AuditSink {
    /// `-` is stdout; anything else a file opened for appending.
    pub fn open(target: &str) -> std::io::Result<AuditSink> {
        let target = match target {
            "-" => Target::Stdout,
            path => Target::File {
                path: path.to_owned(),
                file: Target::open_file(path)?,
            },
        };
        Ok(AuditSink::Writer(AuditWriter::start(target)?))
    }

    /// Reopens the file at its path (after log rotation moved the old one):
    /// lines written after this call go to the new file.
    pub(crate) fn reopen(&self) {
        match self {
            AuditSink::Writer(writer) => {
                let _ = writer.commands.send(Command::Reopen);
            }
            #[cfg(feature = "test-util")]
            AuditSink::Memory(_) => {}
        }
    }

    /// Writes one record as one line, and returns once it is written: a
    /// caller never sees an answer the audit lacks.
    pub(crate) async fn write(&self, record: &AuditRecord) {
        let mut line = serde_json::to_vec(record).expect("audit records serialize");
        line.push(b'\n');
        match self {
            AuditSink::Writer(writer) => {
                let (written, done) = oneshot::channel();
                let command = Command::Line {
                    request_id: record.request_id.clone(),
                    line,
                    written,
                };
                if writer.commands.send(command).is_err() || done.await.is_err() {
                    tracing::error!(request_id = %record.request_id, "audit record could not be written: the audit writer has stopped");
                }
            }
            #[cfg(feature = "test-util")]
            AuditSink::Memory(lines) => {
                lines
                    .lock()
                    .expect("audit memory lock")
                    .push(String::from_utf8_lossy(&line[..line.len() - 1]).into_owned());
            }
        }
    }

    /// The lines kept in memory (empty for other sinks).
    #[cfg(feature = "test-util")]
    pub fn memory_lines(&self) -> Vec<String> {
        match self {
            AuditSink::Memory(lines) => lines.lock().expect("audit memory lock").clone(),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn record(request_id: String) -> AuditRecord {
        AuditRecord {
            ts: "2026-12-02T00:00:00Z".into(),
            request_id,
            // Long enough that a torn write would show inside a line.
            subject: Some("s".repeat(3000)),
            code: "OK",
            status: 200,
            ..AuditRecord::default()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_writers_never_interleave_lines_and_each_line_is_written_before_write_returns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let sink = Arc::new(AuditSink::open(path.to_str().unwrap()).unwrap());
        let writers: Vec<_> = (0..8)
            .map(|w| {
                let (sink, path) = (sink.clone(), path.clone());
                tokio::spawn(async move {
                    for i in 0..250 {
                        let id = format!("w{w}-{i}");
                        sink.write(&record(id.clone())).await;
                        // Written before `write` returned.
                        let text = std::fs::read_to_string(&path).unwrap();
                        assert!(text.contains(&format!("\"request_id\":\"{id}\"")), "{id}");
                    }
                })
            })
            .collect();
        for w in writers {
            w.await.unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let ids: std::collections::HashSet<String> = text
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("every line is one whole record");
                v["request_id"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(text.lines().count(), 2000);
        assert_eq!(ids.len(), 2000, "every record written once");
    }

    #[tokio::test]
    async fn reopen_after_rotation_writes_to_a_new_file_at_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let sink = AuditSink::open(path.to_str().unwrap()).unwrap();
        sink.write(&record("before".into())).await;
        std::fs::rename(&path, dir.path().join("audit.log.1")).unwrap();
        sink.write(&record("still-old".into())).await;
        sink.reopen();
        sink.write(&record("after".into())).await;
        let old = std::fs::read_to_string(dir.path().join("audit.log.1")).unwrap();
        let new = std::fs::read_to_string(&path).unwrap();
        assert_eq!(old.lines().count(), 2);
        assert_eq!(new.lines().count(), 1);
        assert!(new.contains("\"request_id\":\"after\""));
    }

    #[tokio::test]
    async fn a_device_given_as_the_path_is_written_too() {
        let sink = AuditSink::open("/dev/null").unwrap();
        sink.write(&record("to-nowhere".into())).await;
    }
}
