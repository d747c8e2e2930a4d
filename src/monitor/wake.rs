//! Waking a monitor between its checks: the probes' pool connections raise a [`Wake`] when the
//! server closes them (it died, restarted or dropped steward), so the monitor checks at once and
//! an outage is published in about a second instead of at the next scheduled check.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

/// "A connection to the server was lost": raised by a pool's connection, awaited by the monitor.
/// A raise while nobody waits is kept (once), so one between two awaits is not missed.
#[derive(Clone, Default)]
pub struct Wake(Arc<Notify>);

impl Wake {
    /// Asks the monitor for a check now.
    pub fn raise(&self) {
        self.0.notify_one();
    }

    /// Returns once raised (at once if it was raised since the last return).
    pub async fn raised(&self) {
        self.0.notified().await
    }
}

/// A bb8 connection manager for PostgreSQL, like the bb8-postgres crate's (not used), except
/// that a connection the server ends (an error on the connection, not steward dropping its
/// client) raises the wake.
pub struct PgManager {
    config: tokio_postgres::Config,
    wake: Wake,
}

impl PgManager {
    /// Connects with `config`; lost connections raise `wake`.
    pub fn new(config: tokio_postgres::Config, wake: Wake) -> Self {
        Self { config, wake }
    }
}

impl bb8::ManageConnection for PgManager {
    type Connection = tokio_postgres::Client;
    type Error = tokio_postgres::Error;

    async fn connect(&self) -> Result<Self::Connection, Self::Error> {
        let (client, connection) = self.config.connect(tokio_postgres::NoTls).await?;
        let wake = self.wake.clone();
        tokio::spawn(async move {
            // Ok: steward dropped the client (the pool let it go); Err: the server or the
            // network ended it.
            if connection.await.is_err() {
                wake.raise();
            }
        });
        Ok(client)
    }

    async fn is_valid(&self, conn: &mut Self::Connection) -> Result<(), Self::Error> {
        conn.simple_query("").await.map(|_| ())
    }

    fn has_broken(&self, conn: &mut Self::Connection) -> bool {
        conn.is_closed()
    }
}

/// A bb8 connection manager for Redis, like the bb8-redis crate's (not used), except that the
/// socket is watched: end of stream or a read error (the server closed the connection) raises
/// the wake. The connection's own timeouts are the check's (the driver's defaults, 1 s to
/// connect and 500 ms per reply, would be a second, hidden timeout).
pub struct RedisManager {
    client: redis::Client,
    timeout: Duration,
    wake: Wake,
}

impl RedisManager {
    /// Connects with `client`'s address and settings, each step within `timeout`.
    pub fn new(client: redis::Client, timeout: Duration, wake: Wake) -> Self {
        Self {
            client,
            timeout,
            wake,
        }
    }

    fn config(&self) -> redis::AsyncConnectionConfig {
        redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
    }

    async fn open(&self) -> Result<Watched, redis::RedisError> {
        let info = self.client.get_connection_info();
        let stream = match info.addr() {
            redis::ConnectionAddr::Tcp(host, port) => {
                let s = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
                s.set_nodelay(true)?;
                Io::Tcp(s)
            }
            redis::ConnectionAddr::Unix(path) => {
                Io::Unix(tokio::net::UnixStream::connect(path).await?)
            }
            // TLS is not built in.
            _ => return Err(tls_unsupported()),
        };
        Ok(Watched {
            io: stream,
            wake: self.wake.clone(),
            raised: AtomicBool::new(false),
        })
    }
}

/// A master that cannot persist (its last RDB save or AOF write failed) refuses PING with
/// `MISCONF`, as it refuses writes. It answered: the connection is good and the server up;
/// the persistence figures and the write/read test say what is wrong.
pub fn cannot_persist(e: &redis::RedisError) -> bool {
    e.code() == Some("MISCONF")
}

fn tls_unsupported() -> redis::RedisError {
    redis::RedisError::from((
        redis::ErrorKind::InvalidClientConfig,
        "rediss:// (TLS) is not supported by this build; use redis:// or redis+unix://",
    ))
}

impl bb8::ManageConnection for RedisManager {
    type Connection = redis::aio::MultiplexedConnection;
    type Error = redis::RedisError;

    async fn connect(&self) -> Result<Self::Connection, Self::Error> {
        let connect = async {
            let stream = self.open().await?;
            let (conn, driver) = redis::aio::MultiplexedConnection::new_with_config(
                self.client.get_connection_info().redis_settings(),
                stream,
                self.config(),
            )
            .await?;
            tokio::spawn(driver);
            Ok(conn)
        };
        match tokio::time::timeout(self.timeout, connect).await {
            Ok(r) => r,
            Err(_) => Err(redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "no connection within {}",
                    humantime::format_duration(self.timeout)
                ),
            ))),
        }
    }

    async fn is_valid(&self, conn: &mut Self::Connection) -> Result<(), Self::Error> {
        match redis::cmd("PING").query_async::<String>(conn).await {
            Ok(pong) if pong == "PONG" => Ok(()),
            Ok(_) => Err((redis::ErrorKind::Extension, "ping request").into()),
            Err(e) if cannot_persist(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn has_broken(&self, _: &mut Self::Connection) -> bool {
        false
    }
}

enum Io {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

/// A Redis socket that raises the wake (once) when the server ends it: a read that returns
/// end of stream or an error. Steward closing it (the pool dropping the connection) reads
/// nothing, so raises nothing.
struct Watched {
    io: Io,
    wake: Wake,
    raised: AtomicBool,
}

impl Watched {
    fn lost(&self) {
        if !self.raised.swap(true, Ordering::Relaxed) {
            self.wake.raise();
        }
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let out = match &mut this.io {
            Io::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Io::Unix(s) => Pin::new(s).poll_read(cx, buf),
        };
        match &out {
            Poll::Ready(Err(_)) => this.lost(),
            Poll::Ready(Ok(())) if buf.filled().len() == before && buf.remaining() > 0 => {
                this.lost()
            }
            _ => {}
        }
        out
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Tcp(s) => Pin::new(s).poll_write(cx, data),
            Io::Unix(s) => Pin::new(s).poll_write(cx, data),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Tcp(s) => Pin::new(s).poll_flush(cx),
            Io::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Io::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misconf_answer_is_a_server_that_cannot_persist_and_nothing_else_is() {
        let err = |reply: &[u8]| {
            redis::parse_redis_value(reply)
                .and_then(|v| v.extract_error())
                .unwrap_err()
        };
        assert!(cannot_persist(&err(
            b"-MISCONF Errors writing to the AOF file: No space left on device\r\n"
        )));
        assert!(!cannot_persist(&err(b"-ERR unknown command 'PING'\r\n")));
        assert!(!cannot_persist(&err(
            b"-NOAUTH Authentication required.\r\n"
        )));
    }

    #[tokio::test]
    async fn a_raise_before_the_wait_is_kept_once() {
        let w = Wake::default();
        w.clone().raise();
        w.raise();
        tokio::time::timeout(Duration::from_secs(1), w.raised())
            .await
            .expect("kept");
        assert!(
            tokio::time::timeout(Duration::from_millis(50), w.raised())
                .await
                .is_err(),
            "two raises before a wait count once"
        );
    }

    #[tokio::test]
    async fn a_socket_the_peer_closes_raises_and_one_we_drop_does_not() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let watched = |s| Watched {
            io: Io::Tcp(s),
            wake: Wake::default(),
            raised: AtomicBool::new(false),
        };
        // The peer closes: reading sees the end, the wake is raised.
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let mut w = watched(client);
        let wake = w.wake.clone();
        drop(server);
        let mut buf = [0u8; 16];
        let n = tokio::io::AsyncReadExt::read(&mut w, &mut buf)
            .await
            .unwrap();
        assert_eq!(n, 0);
        tokio::time::timeout(Duration::from_secs(1), wake.raised())
            .await
            .expect("raised on end of stream");
        // Data read is no loss.
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        let mut w = watched(client);
        let wake = w.wake.clone();
        tokio::io::AsyncWriteExt::write_all(&mut server, b"+PONG\r\n")
            .await
            .unwrap();
        let n = tokio::io::AsyncReadExt::read(&mut w, &mut buf)
            .await
            .unwrap();
        assert_eq!(n, 7);
        drop(w);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), wake.raised())
                .await
                .is_err(),
            "dropping our side raises nothing"
        );
    }
}
