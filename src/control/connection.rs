//! One accepted control connection: its deadlines (a first request within
//! `first_request_timeout`, each next one within `idle_timeout`; empty lines count for
//! neither), its requests and replies, admin commands audited before their reply, and the
//! `task … control` requests the socket's own task cannot carry out like the others.

use super::access::{self, Level, Peer};
use super::dispatch::Dispatcher;
use super::lines::{BoundedLines, Line};
use super::protocol::{parse_request, Access, Reply, Request, TaskAction, CONTROL_TASK, MAX_LINE};
use super::slots::Slot;
use crate::audit::{Entry, Outcome};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::UnixStream;

/// How long a refused peer has to send the request it came for (recorded in the audit log).
const REFUSED_READ: Duration = Duration::from_secs(2);
/// How long a reply may take to be written before the client counts as stuck.
const WRITE: Duration = Duration::from_secs(30);

/// What a connection was admitted with.
pub struct Admitted {
    pub peer: Peer,
    pub level: Level,
    pub first_request: Duration,
    pub idle: Duration,
    /// Held, never read: dropped (freed) when the connection ends.
    pub _slot: Slot,
}

/// Answers requests on one connection until the client closes it, misses its deadline, or is
/// refused.
pub async fn serve(stream: UnixStream, a: Admitted, d: &Dispatcher) {
    let (read, mut write) = stream.into_split();
    let mut lines = BoundedLines::new(read, MAX_LINE);
    let peer = &a.peer;
    if a.level == Level::Nothing {
        let wait = REFUSED_READ.min(a.first_request);
        let first = match tokio::time::timeout(wait, lines.next()).await {
            Ok(Ok(Line::Text(line))) => parse_request(&line).ok(),
            _ => None,
        };
        let msg = access::refused_message(peer);
        deny(d, peer, first.as_ref(), &msg).await;
        send(&mut write, &Reply::error(msg)).await;
        return;
    }
    // Empty lines are not requests: they neither meet nor move the deadline.
    let mut deadline = tokio::time::Instant::now() + a.first_request;
    loop {
        let next = match tokio::time::timeout_at(deadline, lines.next()).await {
            Err(_) => {
                tracing::debug!(
                    uid = peer.uid,
                    "control connection closed: no request before its deadline"
                );
                return;
            }
            Ok(Err(_)) | Ok(Ok(Line::Eof)) => return,
            Ok(Ok(line)) => line,
        };
        let mut restart_self = false;
        let reply = match next {
            Line::Text(line) if line.trim().is_empty() => continue,
            Line::Text(line) => match parse_request(&line) {
                Ok(req) if req.access() == Access::Read => d.handle(req).await,
                Ok(req) if !a.level.allows(Access::Admin) => {
                    let msg = access::not_admin_message(peer, req.name());
                    deny(d, peer, Some(&req), &msg).await;
                    send(&mut write, &Reply::error(msg)).await;
                    return;
                }
                Ok(req) => {
                    restart_self = restarts_control(&req);
                    admin(d, peer, req).await
                }
                Err(msg) => Reply::error(msg),
            },
            Line::TooLong | Line::Eof => Reply::error(format!(
                "request line longer than {MAX_LINE} bytes; discarded"
            )),
        };
        d.metrics.changed();
        let sent = send(&mut write, &reply).await;
        if restart_self && reply.ok {
            // The restart ends this connection with the rest; the reply is already out.
            let sup = d.supervisor.clone();
            tokio::spawn(async move {
                if let Err(e) = sup.act(CONTROL_TASK, TaskAction::Restart).await {
                    tracing::error!(error = %e, "restarting the control task failed");
                }
            });
            return;
        }
        if !sent {
            return;
        }
        deadline = tokio::time::Instant::now() + a.idle;
    }
}

/// `task restart control`: answered first, carried out once the reply is out (the restart
/// closes every connection, this one too).
fn restarts_control(req: &Request) -> bool {
    matches!(req, Request::Task { action: TaskAction::Restart, name } if name == CONTROL_TASK)
}

/// Runs an admin command only if its audit entry can be written, and writes the entry (with
/// the outcome) before the reply goes out.
async fn admin(d: &Dispatcher, peer: &Peer, req: Request) -> Reply {
    let started = Instant::now();
    let (name, args) = (req.name(), req.arguments());
    let ready = if req.announces_start() {
        let start = Entry::new("client", name, args.clone(), started)
            .peer(peer.id())
            .outcome(Outcome::Started, None);
        d.audit.record(start).await
    } else {
        d.audit.ready().await
    };
    if let Err(e) = ready {
        tracing::error!(command = name, uid = peer.uid, error = %e, "admin command refused: the audit log cannot be written");
        return Reply::error(format!("{name} refused, nothing was done: {e}"));
    }
    let reply = if restarts_control(&req) {
        d.control_restart_reply().await
    } else {
        d.handle(req).await
    };
    let outcome = if reply.ok {
        Outcome::Ok
    } else {
        Outcome::Error
    };
    let entry = Entry::new("client", name, args, started)
        .peer(peer.id())
        .outcome(outcome, reply.error.clone());
    match d.audit.record(entry).await {
        Ok(()) => reply,
        Err(e) => Reply {
            ok: false,
            error: Some(format!(
                "{name} was carried out (outcome: {}) but its audit entry could not be written: {e}",
                if reply.ok { "ok" } else { "error" }
            )),
            data: reply.data,
        },
    }
}

/// Records a refused request (or connection, when no request came) in the audit log, and
/// warns in steward's log within the audit log's bound per uid (a flood of refusals is
/// counted in `steward_audit_denied_suppressed_total`, not logged line by line).
pub async fn deny(d: &Dispatcher, peer: &Peer, req: Option<&Request>, msg: &str) {
    if record_denied(d, peer, req, msg).await {
        tracing::warn!(uid = peer.uid, gid = peer.gid, pid = ?peer.pid, command = req.map(Request::name), "control request denied");
    }
}

/// The audit line of a refused request or connection (bounded per uid by the audit log);
/// false when the bound left it out.
pub async fn record_denied(d: &Dispatcher, peer: &Peer, req: Option<&Request>, msg: &str) -> bool {
    let (name, args) = match req {
        Some(r) => (r.name(), r.arguments()),
        None => ("connect", serde_json::Value::Null),
    };
    let entry = Entry::new("client", name, args, Instant::now())
        .peer(peer.id())
        .outcome(Outcome::Denied, Some(msg.to_string()));
    // Bounded per uid; a failure is logged and counted by the writer; refused either way.
    d.audit.record_denied(entry, peer.uid).await
}

/// Writes one reply line; false when the client is gone or stuck.
pub async fn send(write: &mut OwnedWriteHalf, reply: &Reply) -> bool {
    matches!(
        tokio::time::timeout(WRITE, write.write_all(&reply_line(reply))).await,
        Ok(Ok(()))
    )
}

/// A reply as the line sent on the wire.
pub fn reply_line(reply: &Reply) -> Vec<u8> {
    let mut out = serde_json::to_vec(reply).unwrap_or_else(|_| b"{\"ok\":false}".to_vec());
    out.push(b'\n');
    out
}
