//! A streaming standby of a test's [`Postgres`] (a second throwaway cluster made with
//! `pg_basebackup -R`), and restarting a cluster with settings that need a restart
//! (`archive_mode`).

use super::*;

impl Postgres {
    /// A hot standby streaming from this server: `pg_basebackup -R` over the primary's Unix
    /// socket (initdb's pg_hba trusts local replication connections), started on a free port
    /// with its own socket directory. `name` is its `cluster_name`, which its WAL receiver
    /// sends as `application_name` (the primary's `pg_stat_replication` shows it). Roles,
    /// databases and password are the primary's, so [`Postgres::url`] works on it too.
    pub fn start_standby(&self, name: &str) -> Postgres {
        let dir = short_tempdir("stw-pgs-");
        if self.as_postgres_user {
            let (uid, gid) = postgres_ids();
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown standby dir");
        }
        let mut standby = Postgres {
            dir,
            bindir: self.bindir.clone(),
            as_postgres_user: self.as_postgres_user,
            port: free_port(),
            password: self.password.clone(),
        };
        run_ok(
            self.cmd("pg_basebackup")
                .arg("-D")
                .arg(standby.data_dir())
                .args(["-R", "-X", "stream", "-c", "fast", "--no-sync", "-h"])
                .arg(self.dir())
                .args(["-p", &self.port.to_string(), "-U", "postgres"]),
            "pg_basebackup",
        );
        standby.append_conf(&format!(
            "\n# standby\nport = {}\nunix_socket_directories = '{}'\ncluster_name = '{name}'\n",
            standby.port,
            standby.dir().display()
        ));
        for attempt in 1.. {
            match standby.start_server() {
                Ok(()) => break,
                Err(e) if attempt < 4 && e.contains("Address already in use") => {
                    standby.port = free_port();
                    standby.append_conf(&format!("port = {}\n", standby.port));
                }
                Err(e) => panic!("standby: {e}"),
            }
        }
        wait_until(
            Duration::from_secs(60),
            &format!("standby {name} streaming from the primary"),
            || {
                self.psql_as_postgres(&format!(
                    "SELECT count(*) FROM pg_stat_replication \
                     WHERE application_name = '{name}' AND state = 'streaming'"
                ))
                .trim()
                    == "1"
            },
        );
        standby
    }

    /// Appends `settings` to postgresql.conf and restarts the server (for settings such as
    /// `archive_mode` that only a restart applies).
    pub fn restart_with(&self, settings: &str) {
        self.append_conf(&format!("\n{settings}\n"));
        self.stop();
        self.start_again();
    }

    fn append_conf(&self, text: &str) {
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(self.data_dir().join("postgresql.conf"))
            .expect("open postgresql.conf");
        f.write_all(text.as_bytes())
            .expect("append to postgresql.conf");
    }
}
