//! What an operator types is scrubbed everywhere (issue 12, item 6): a maintenance reason and
//! a backup label holding the configured passwords are stored and shown only masked — in
//! `state/maintenance.json`, the Redis key `steward:maintenance`, `maintenance status`, the
//! backup's metadata and `backup list` — and a label has a bounded length.

mod common;

use common::faults::{backup_section, list};
use common::*;
use steward::backup::catalog::BackupMeta;

#[test]
fn reasons_and_labels_never_store_a_password() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let st = Steward::builder(&pg, &redis)
        .with(|s| {
            s.pg_extra = "write_read_test = false\n".into();
            s.backup = backup_section(dir.path(), "");
        })
        .start();
    let typed = format!("db pw {} and cache pw {}", pg.password, redis.password);
    assert_eq!(st.ctl(&["maintenance", "on", "--reason", &typed]).code, 0);
    let out = st.ctl(&["backup", "create", "--wait", "--label", &typed]);
    let metas: Vec<BackupMeta> = out.data();
    let mut surfaces = vec![
        (
            "maintenance status".to_string(),
            st.ctl(&["maintenance", "status"]).all(),
        ),
        (
            "maintenance status (human)".into(),
            st.ctl_human(&["maintenance", "status"]).all(),
        ),
        (
            "backup list".into(),
            st.ctl_human(&["backup", "list"]).all(),
        ),
        ("backup create reply".into(), out.all()),
        (
            "maintenance.json".into(),
            std::fs::read_to_string(st.settings.state_dir.join("maintenance.json")).unwrap(),
        ),
        (
            "metadata".into(),
            std::fs::read_to_string(
                steward::backup::catalog::db_dir(dir.path(), PG_DB)
                    .join(format!("{}.json", metas[0].id)),
            )
            .unwrap(),
        ),
        ("log".into(), st.log()),
    ];
    st.wait_until(
        std::time::Duration::from_secs(30),
        "the Redis maintenance key",
        |_| {
            redis
                .command(&["GET", "steward:maintenance"])
                .is_ok_and(|v| v.contains("cache pw"))
        },
    );
    surfaces.push((
        "redis steward:maintenance".into(),
        redis.command(&["GET", "steward:maintenance"]).unwrap(),
    ));
    for (name, text) in &surfaces {
        for secret in [&pg.password, &redis.password] {
            assert!(
                !text.contains(secret.as_str()),
                "{name} holds a password:\n{text}"
            );
        }
    }
    assert!(surfaces[0].1.contains("db pw ***"), "{}", surfaces[0].1);
    assert!(list(&st)[0].label.as_deref().unwrap_or("").contains("***"));
    let long = "x".repeat(201);
    let out = st.ctl(&["backup", "create", "--label", &long]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.all().contains("keep it to 200"), "{out:?}");
}
