//! The README's pg_cron lines, run as they are written against the pg_cron installed here
//! (Debian 12 ships 1.4): each line the README gives for this version is accepted, each
//! line for a later version is refused (that is why there are two), and the command they
//! schedule works in a database with pg_workflow.

use pg_workflow_client_tests::{base_url, connect, fresh_database};

/// (the version the README names for a line, as (major, minor); the line).
fn readme_cron_lines() -> Vec<((u32, u32), String)> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).expect("README.md");
    let mut lines = Vec::new();
    let mut version = None;
    for line in readme.lines() {
        if let Some(rest) = line.strip_prefix("-- pg_cron ") {
            let v: Vec<u32> =
                rest.split_whitespace().next().unwrap_or("").split('.').filter_map(|p| p.parse().ok()).collect();
            version = Some((v[0], v[1]));
        } else if line.starts_with("SELECT cron.schedule(") {
            lines.push((version.expect("a pg_cron line without a version comment above it"), line.to_owned()));
        }
    }
    lines
}

#[test]
fn the_readme_pg_cron_lines_work_with_the_installed_pg_cron() {
    let lines = readme_cron_lines();
    assert!(lines.len() >= 2, "the README gives a line for pg_cron 1.4 and one for later versions");
    let mut cron = connect(&format!("{} dbname=postgres", base_url()));
    cron.batch_execute("CREATE EXTENSION IF NOT EXISTS pg_cron").unwrap();
    let installed: String =
        cron.query_one("SELECT extversion FROM pg_extension WHERE extname = 'pg_cron'", &[]).unwrap().get(0);
    let parts: Vec<u32> = installed.split(['.', '-']).filter_map(|p| p.parse().ok()).collect();
    let installed = (parts[0], parts[1]);
    for (needs, line) in &lines {
        let result = cron.batch_execute(line);
        if installed >= *needs {
            result.unwrap_or_else(|e| panic!("pg_cron {installed:?} refused the README's line {line}: {e:?}"));
        } else {
            let e = result.expect_err("a line for a later pg_cron should be refused by this one");
            let message = e.as_db_error().map(|d| d.message().to_owned()).unwrap_or_else(|| e.to_string());
            assert!(message.contains("invalid schedule"), "{message}");
        }
        cron.batch_execute("SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = 'pg_workflow_dispatch'")
            .unwrap();
    }
    // The command the lines schedule, in a database with pg_workflow.
    let command = lines[0].1.split(", '").nth(2).unwrap().trim_end_matches("');").to_owned();
    let mut db = connect(&fresh_database("pgw_cron"));
    db.batch_execute(&command).unwrap();
    cron.batch_execute("DROP EXTENSION pg_cron").unwrap();
}
