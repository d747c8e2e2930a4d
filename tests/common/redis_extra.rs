//! Redis beyond the plain harness server: a server started with extra arguments (a replica of
//! another with `--replicaof`, the append-only file on in a given directory), and raw connections a test holds open (a client blocked in
//! BLPOP, connections beyond `maxclients`, application traffic in MULTI/EXEC rounds).

use super::*;

impl Redis {
    /// A redis-server like [`Redis::start`], with `extra` arguments after the harness's own.
    pub fn start_with(extra: &[&str]) -> Redis {
        Self::spawn_with(random_password(), extra)
    }

    fn spawn_with(password: String, extra: &[&str]) -> Redis {
        let mut r = Redis {
            dir: short_tempdir("stw-redis-"),
            child: None,
            port: free_port(),
            password,
        };
        let log = fs::File::create(r.dir.path().join("redis.log")).unwrap();
        let child = Command::new("redis-server")
            .args(["--port", &r.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--requirepass", &r.password, "--masterauth", &r.password])
            .arg("--dir")
            .arg(r.dir.path())
            .args(extra)
            .current_dir(r.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn redis-server (is it installed?)");
        r.child = Some(child);
        wait_until(
            Duration::from_secs(20),
            "redis-server to answer PING",
            || matches!(r.command(&["PING"]), Ok(p) if p == "+PONG"),
        );
        r
    }

    /// A redis-server with the append-only file on (`appendonly yes`, fsync every second)
    /// keeping its files in `dir` (e.g. a small tmpfs the test fills up) rather than its own
    /// directory, which still holds its log.
    pub fn start_aof_in(dir: &Path) -> Redis {
        let dir = dir.to_str().expect("a UTF-8 path");
        Self::start_with(&["--appendonly", "yes", "--dir", dir])
    }

    /// A replica of `master`: same password, `--replicaof 127.0.0.1 <port>`.
    pub fn start_replica_of(master: &Redis) -> Redis {
        let port = master.port.to_string();
        Self::spawn_with(
            master.password.clone(),
            &["--replicaof", "127.0.0.1", &port],
        )
    }

    /// The server's directory (`--dir`), where BGSAVE writes `dump.rdb`.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// One field of `INFO all`.
    pub fn info_field(&self, name: &str) -> Option<String> {
        let info = RawConn::open(self).ok()?.request(&["INFO", "all"]).ok()?;
        info.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .map(|v| v.trim().to_string())
    }
}

/// A connection the test holds open, speaking RESP by hand.
pub struct RawConn {
    reader: BufReader<TcpStream>,
}

impl RawConn {
    /// Connects and authenticates; fails when the server refuses (e.g. `maxclients`).
    pub fn open(redis: &Redis) -> std::io::Result<RawConn> {
        let s = TcpStream::connect_timeout(
            &([127, 0, 0, 1], redis.port).into(),
            Duration::from_secs(2),
        )?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut c = RawConn {
            reader: BufReader::new(s),
        };
        let r = c.request(&["AUTH", &redis.password])?;
        if r != "OK" {
            return Err(std::io::Error::other(format!("AUTH: {r}")));
        }
        Ok(c)
    }

    /// Writes commands without reading their replies.
    pub fn send(&mut self, commands: &[Vec<String>]) -> std::io::Result<()> {
        let mut b = String::new();
        for args in commands {
            b += &format!("*{}\r\n", args.len());
            for a in args {
                b += &format!("${}\r\n{a}\r\n", a.len());
            }
        }
        self.reader.get_mut().write_all(b.as_bytes())
    }

    /// One command and its reply: a status or bulk string's text, an integer's digits, an
    /// array's elements joined by newlines; an error reply is an `Err`.
    pub fn request(&mut self, args: &[&str]) -> std::io::Result<String> {
        self.send(&[args.iter().map(|a| a.to_string()).collect()])?;
        self.reply()
    }

    /// Reads one reply (see [`RawConn::request`]).
    pub fn reply(&mut self) -> std::io::Result<String> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(std::io::Error::other("connection closed"));
        }
        let line = line.trim_end();
        let (kind, rest) = line.split_at(1);
        let n = || rest.parse::<i64>().map_err(std::io::Error::other);
        match kind {
            "+" | ":" => Ok(rest.to_string()),
            "-" => Err(std::io::Error::other(rest.to_string())),
            "$" if n()? < 0 => Ok(String::new()),
            "$" => {
                let mut buf = vec![0u8; n()? as usize + 2];
                self.reader.read_exact(&mut buf)?;
                buf.truncate(buf.len() - 2);
                Ok(String::from_utf8_lossy(&buf).into_owned())
            }
            "*" => {
                let items: std::io::Result<Vec<String>> =
                    (0..n()?.max(0)).map(|_| self.reply()).collect();
                Ok(items?.join("\n"))
            }
            _ => Err(std::io::Error::other(format!("unexpected reply {line:?}"))),
        }
    }
}
