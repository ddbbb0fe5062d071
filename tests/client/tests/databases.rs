//! Dispatchers and the databases they serve coming and going: slots are reused, a
//! database is left alone while a statement needs it alone (DROP DATABASE, CREATE
//! DATABASE ... TEMPLATE, RENAME), and no dispatcher is started for a dropped one.
//! Users' test suites create and drop a database per test without `WITH (FORCE)`.

use pg_workflow_client_tests::{base_url, connect, test_pgdata};
use postgres::Client;
use std::time::{Duration, Instant};

const BOUND: Duration = Duration::from_secs(30);

fn wait_for(db: &mut Client, query: &str, what: &str) {
    let start = Instant::now();
    while !db.query_one(query, &[]).unwrap().get::<_, bool>(0) {
        assert!(start.elapsed() < BOUND, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn dispatcher_in(db: &str) -> String {
    format!("SELECT EXISTS (SELECT FROM pg_stat_activity WHERE backend_type = 'pg_workflow dispatcher' AND datname = '{db}')")
}

fn admin() -> Client {
    connect(&format!("{} dbname=postgres", base_url()))
}

/// Creates database `name` with the extension and waits until its dispatcher is connected.
fn database_with_dispatcher(admin: &mut Client, name: &str) -> u32 {
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).unwrap();
    admin.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
    connect(&format!("{} dbname={name}", base_url())).batch_execute("CREATE EXTENSION pg_workflow").unwrap();
    wait_for(admin, &dispatcher_in(name), &format!("a dispatcher in {name}"));
    admin.query_one("SELECT oid::int8 FROM pg_database WHERE datname = $1", &[&name]).unwrap().get::<_, i64>(0) as u32
}

/// Lines of the server log that say one of pg_workflow's processes tried to connect to
/// one of `oids` after it was dropped. (The log names each line's backend type, see
/// scripts/cluster.sh: Postgres' own autovacuum workers can meet a just-dropped database
/// the same way, and are none of ours.)
fn connections_to_dropped(oids: &[u32]) -> Vec<String> {
    let pgdata = test_pgdata();
    let log = std::fs::read_to_string(format!("{pgdata}/server.log")).unwrap_or_default();
    log.lines()
        .filter(|l| l.contains("] pg_workflow "))
        .filter(|l| oids.iter().any(|oid| l.contains(&format!("database {oid} does not exist"))))
        .map(str::to_owned)
        .collect()
}

/// An empty directory for a tablespace, beside the test cluster, owned by the server's user.
fn tablespace_directory() -> String {
    let pgdata = test_pgdata();
    let dir = format!("{pgdata}.tablespace");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // As root the cluster runs as `postgres` (scripts/cluster.sh): give it the directory.
    let owner = std::fs::metadata(&pgdata).map(|m| std::os::unix::fs::MetadataExt::uid(&m)).unwrap();
    let group = std::fs::metadata(&pgdata).map(|m| std::os::unix::fs::MetadataExt::gid(&m)).unwrap();
    std::os::unix::fs::chown(&dir, Some(owner), Some(group)).unwrap();
    dir
}

#[test]
fn a_hundred_databases_created_and_dropped_leave_dispatcher_slots_for_the_next() {
    let mut admin = admin();
    let mut dropped = Vec::new();
    // More than the 64 slots: each dropped database must give its slot back.
    for i in 0..100 {
        let name = format!("pgw_churn_{i}");
        dropped.push(database_with_dispatcher(&mut admin, &name));
        // No FORCE: the dispatcher leaves as a dropped database's backends do.
        admin.batch_execute(&format!("DROP DATABASE {name}")).unwrap();
    }
    let last = database_with_dispatcher(&mut admin, "pgw_churn_last");
    assert!(!dropped.contains(&last));
    admin.batch_execute("DROP DATABASE pgw_churn_last").unwrap();
    dropped.push(last);
    // The launcher lists databases every 5 s: give a stale list the time to be used.
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(connections_to_dropped(&dropped), Vec::<String>::new(), "dispatchers started for dropped databases");
}

#[test]
fn drop_database_works_while_an_sql_step_runs_there() {
    let mut admin = admin();
    database_with_dispatcher(&mut admin, "pgw_drop_busy");
    let mut db = connect(&format!("{} dbname=pgw_drop_busy", base_url()));
    db.batch_execute(
        r#"SELECT workflow_define('long', '{"steps": [{"name": "slow", "sql": "SELECT pg_sleep(600)"}]}');
           SELECT workflow_start('long');"#,
    )
    .unwrap();
    drop(db);
    drop_once_its_step_runs(&mut admin, "pgw_drop_busy");
}

/// Waits until the sql runner in database `name` sleeps in its step, then drops `name`
/// (without FORCE: it fails if a session is left there after five seconds).
fn drop_once_its_step_runs(admin: &mut Client, name: &str) {
    wait_for(
        admin,
        &format!(
            "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE backend_type = 'pg_workflow sql runner' \
             AND datname = '{name}' AND wait_event = 'PgSleep')"
        ),
        "the step to run",
    );
    admin.batch_execute(&format!("DROP DATABASE {name}")).unwrap();
}

/// Stops the postmaster (SIGSTOP) until dropped: it starts no background worker
/// meanwhile, while the backends connected before go on.
struct PostmasterStopped(String);

impl PostmasterStopped {
    fn new() -> PostmasterStopped {
        let pgdata = test_pgdata();
        let pid =
            std::fs::read_to_string(format!("{pgdata}/postmaster.pid")).unwrap().lines().next().unwrap().to_owned();
        signal(&pid, "-STOP");
        PostmasterStopped(pid)
    }
}

impl Drop for PostmasterStopped {
    fn drop(&mut self) {
        signal(&self.0, "-CONT");
    }
}

fn signal(pid: &str, which: &str) {
    let status = std::process::Command::new("kill").args([which, pid]).status().unwrap();
    assert!(status.success(), "kill {which} {pid}");
}

#[test]
fn drop_database_works_when_the_postmaster_was_slow_to_start_the_sql_runner() {
    let mut admin = admin();
    database_with_dispatcher(&mut admin, "pgw_drop_slow_start");
    let mut db = connect(&format!("{} dbname=pgw_drop_slow_start", base_url()));
    db.batch_execute(
        r#"SELECT workflow_define('long', '{"steps": [{"name": "slow", "sql": "SELECT pg_sleep(600)"}]}')"#,
    )
    .unwrap();
    {
        // The dispatcher asks for a runner, which the postmaster does not start yet.
        // It used to count such a runner as gone and ask for another at its next pass,
        // every millisecond: the first then ran the step, unknown to the dispatcher,
        // which on leaving stopped only the last, and the DROP waited for the first
        // and failed ("being accessed by other users").
        let _stopped = PostmasterStopped::new();
        db.batch_execute("SELECT workflow_start('long')").unwrap();
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(db);
    drop_once_its_step_runs(&mut admin, "pgw_drop_slow_start");
}

#[test]
fn a_database_with_a_dispatcher_can_be_copied_and_renamed_and_gets_it_back() {
    let mut admin = admin();
    database_with_dispatcher(&mut admin, "pgw_template");
    admin.batch_execute("DROP DATABASE IF EXISTS pgw_copy WITH (FORCE)").unwrap();
    admin.batch_execute("CREATE DATABASE pgw_copy TEMPLATE pgw_template").unwrap();
    wait_for(&mut admin, &dispatcher_in("pgw_template"), "the template's dispatcher to come back");
    wait_for(&mut admin, &dispatcher_in("pgw_copy"), "a dispatcher in the copy");
    admin.batch_execute("DROP DATABASE IF EXISTS pgw_renamed WITH (FORCE)").unwrap();
    admin.batch_execute("ALTER DATABASE pgw_template RENAME TO pgw_renamed").unwrap();
    wait_for(&mut admin, &dispatcher_in("pgw_renamed"), "the renamed database's dispatcher");
    // Moving it to another tablespace needs it alone too.
    let location = tablespace_directory();
    admin.batch_execute("DROP TABLESPACE IF EXISTS pgw_elsewhere").unwrap();
    admin.batch_execute(&format!("CREATE TABLESPACE pgw_elsewhere LOCATION '{location}'")).unwrap();
    admin.batch_execute("ALTER DATABASE pgw_renamed SET TABLESPACE pgw_elsewhere").unwrap();
    wait_for(&mut admin, &dispatcher_in("pgw_renamed"), "the moved database's dispatcher");
    admin.batch_execute("DROP DATABASE pgw_copy").unwrap();
    admin.batch_execute("DROP DATABASE pgw_renamed").unwrap();
    admin.batch_execute("DROP TABLESPACE pgw_elsewhere").unwrap();
}
