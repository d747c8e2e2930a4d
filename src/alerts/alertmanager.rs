//! Delivery to Alertmanager: firing alerts are POSTed to `/api/v2/alerts` when they start and
//! every `resend_interval` while they fire, and once more with `endsAt` when they resolve.
//! A failed delivery is retried with capped backoff; the engine never waits for it.

use crate::config::Config;
use crate::metrics::Metrics;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A firing alert as the engine hands it over.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub alertname: &'static str,
    pub service: &'static str,
    pub severity: &'static str,
    pub summary: String,
    pub description: String,
    /// When it started firing, Unix seconds.
    pub starts_at: f64,
}

impl Notice {
    fn key(&self) -> (&'static str, &'static str, &'static str) {
        (self.alertname, self.service, self.severity)
    }
}

/// Why one delivery failed; logged, counted, and retried.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("alertmanager.url {0:?} is not an http://host:port URL")]
    Url(String),
    #[error("cannot connect to Alertmanager at {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("HTTP exchange with Alertmanager failed: {0}")]
    Http(#[from] hyper::Error),
    #[error("Alertmanager answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("Alertmanager did not answer within {0:?}")]
    Timeout(Duration),
}

const TIMEOUT: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// One run of the `alertmanager` task: delivers what `rx` says is firing until cancelled.
/// What a previous run delivered is not known to a new one, so it starts by sending the
/// current set.
pub async fn run(
    config: watch::Receiver<Arc<Config>>,
    metrics: Arc<Metrics>,
    mut rx: watch::Receiver<Vec<Notice>>,
    cancel: CancellationToken,
) -> crate::supervisor::TaskResult {
    let instance = crate::hostname();
    let mut delivered: Vec<Notice> = Vec::new();
    let mut resolved: Vec<(Notice, f64)> = Vec::new();
    let mut due: Option<Instant> = (!rx.borrow().is_empty()).then(Instant::now);
    let mut backoff = Duration::from_secs(1);
    loop {
        let sleep = async {
            match due {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            changed = rx.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                let firing = rx.borrow_and_update().clone();
                let now = crate::unix_now();
                for gone in delivered.iter().filter(|d| !firing.iter().any(|f| f.key() == d.key())) {
                    resolved.push((gone.clone(), now));
                }
                delivered.retain(|d| firing.iter().any(|f| f.key() == d.key()));
                let new = firing.iter().any(|f| !delivered.iter().any(|d| d.key() == f.key()));
                if new || !resolved.is_empty() {
                    due = Some(Instant::now());
                }
            }
            _ = sleep => {
                let cfg = config.borrow().clone();
                let firing = rx.borrow().clone();
                let resend = cfg.alertmanager.resend_interval;
                if cfg.alertmanager.url.is_empty() {
                    // Nowhere to send; look again later, in case a reload sets a URL.
                    resolved.clear();
                    delivered = firing;
                    due = (!delivered.is_empty()).then(|| Instant::now() + resend);
                    continue;
                }
                let body = payload(&firing, &resolved, &instance, resend);
                match deliver(&cfg.alertmanager.url, body).await {
                    Ok(()) => {
                        metrics.alerts.notifications.with_label_values(&["success"]).inc();
                        tracing::debug!(firing = firing.len(), resolved = resolved.len(), "alerts delivered to Alertmanager");
                        delivered = firing;
                        resolved.clear();
                        backoff = Duration::from_secs(1);
                        due = (!delivered.is_empty()).then(|| Instant::now() + resend);
                    }
                    Err(e) => {
                        metrics.alerts.notifications.with_label_values(&["failure"]).inc();
                        tracing::warn!(error = %e, retry_in_seconds = backoff.as_secs(), "cannot deliver alerts to Alertmanager");
                        due = Some(Instant::now() + backoff);
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
        }
    }
}

fn rfc3339(t: f64) -> String {
    chrono::DateTime::from_timestamp_millis((t * 1000.0) as i64)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The `/api/v2/alerts` body: firing alerts end a few resend intervals ahead (so Alertmanager
/// resolves them by itself if steward goes away); resolved ones end when they resolved.
fn payload(
    firing: &[Notice],
    resolved: &[(Notice, f64)],
    instance: &str,
    resend: Duration,
) -> Vec<u8> {
    let horizon = crate::unix_now() + 4.0 * resend.as_secs_f64();
    let one = |n: &Notice, ends: f64| {
        serde_json::json!({
            "labels": {
                "alertname": n.alertname,
                "service": n.service,
                "severity": n.severity,
                "instance": instance,
                "job": "steward",
            },
            "annotations": {"summary": n.summary, "description": n.description},
            "startsAt": rfc3339(n.starts_at),
            "endsAt": rfc3339(ends),
        })
    };
    let all: Vec<_> = firing
        .iter()
        .map(|n| one(n, horizon))
        .chain(resolved.iter().map(|(n, at)| one(n, *at)))
        .collect();
    serde_json::to_vec(&all).unwrap_or_default()
}

/// One POST over a fresh HTTP/1.1 connection.
async fn deliver(base: &str, body: Vec<u8>) -> Result<(), DeliveryError> {
    tokio::time::timeout(TIMEOUT, post(base, body))
        .await
        .map_err(|_| DeliveryError::Timeout(TIMEOUT))?
}

async fn post(base: &str, body: Vec<u8>) -> Result<(), DeliveryError> {
    let url = url::Url::parse(base).map_err(|_| DeliveryError::Url(base.into()))?;
    let host = url
        .host_str()
        .ok_or_else(|| DeliveryError::Url(base.into()))?;
    let addr = format!("{host}:{}", url.port_or_known_default().unwrap_or(9093));
    let stream = tokio::net::TcpStream::connect(&addr)
        .await
        .map_err(|source| DeliveryError::Connect {
            addr: addr.clone(),
            source,
        })?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let path = format!("{}/api/v2/alerts", url.path().trim_end_matches('/'));
    let req = hyper::Request::post(path)
        .header(hyper::header::HOST, addr.as_str())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|_| DeliveryError::Url(base.into()))?;
    let resp = sender.send_request(req).await?;
    let status = resp.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(());
    }
    let body = resp.into_body().collect().await?.to_bytes();
    Err(DeliveryError::Status {
        status,
        body: String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_carries_labels_annotations_and_ends() {
        let n = Notice {
            alertname: "ServiceDown",
            service: "postgres",
            severity: "critical",
            summary: "postgres is down".into(),
            description: "refused".into(),
            starts_at: 1_700_000_000.0,
        };
        let body = payload(
            std::slice::from_ref(&n),
            &[(n.clone(), 1_700_000_060.0)],
            "db1",
            Duration::from_secs(60),
        );
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v[0]["labels"]["alertname"], "ServiceDown");
        assert_eq!(v[0]["labels"]["instance"], "db1");
        assert_eq!(v[0]["annotations"]["summary"], "postgres is down");
        assert_eq!(v[0]["startsAt"], "2023-11-14T22:13:20.000Z");
        assert_eq!(v[1]["endsAt"], "2023-11-14T22:14:20.000Z");
    }
}
