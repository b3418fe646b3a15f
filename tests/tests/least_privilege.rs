//! Least privilege (issue 13 §1), as the services run in `make test` and `make run`: each
//! service connects to Postgres as a role of its own that owns its schema, runs its
//! migrations as that role, and is refused everywhere else: another service's schema, a
//! schema of its own making, the `public` schema.

use platform::db::DatabaseSettings;
use testkit::TestEnv;
use tokio_postgres::error::SqlState;

async fn build_both(env: &TestEnv) {
    let enrollment = enrollment::build(enrollment::Settings {
        service: env.service_settings("enrollment"),
        region: "420100".into(),
    })
    .await
    .expect("enrollment builds (migrations as its role)");
    env.track_queues(enrollment.topology().owned_queues(enrollment.names()));
    drop(enrollment);
    let collection = collection::build(collection::Settings {
        service: env.service_settings("collection"),
        region: "420100".into(),
        schedule: collection::schedule::ScheduleSettings {
            enabled: false,
            ..Default::default()
        },
    })
    .await
    .expect("collection builds (migrations as its role)");
    env.track_queues(collection.topology().owned_queues(collection.names()));
    drop(collection);
}

#[track_caller]
fn refused(what: &str, result: Result<impl std::fmt::Debug, tokio_postgres::Error>) {
    match result {
        Err(e) if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => {}
        other => panic!("{what}: expected 'permission denied' (42501), got {other:?}"),
    }
}

#[tokio::test]
async fn each_service_role_owns_its_schema_and_is_refused_in_every_other() {
    let env = TestEnv::new();
    build_both(&env).await;
    let (enrollment_schema, collection_schema) = (env.schema("enrollment"), env.schema("collection"));
    let role = env.service_role("enrollment");

    // The migrations ran as the role: it owns every table of its schema, and no other.
    let (admin, conn) = tokio_postgres::connect(&testkit::database_url(), tokio_postgres::NoTls)
        .await
        .expect("admin");
    let driver = tokio::spawn(conn);
    let owners: Vec<(String, String)> = admin
        .query(
            "select schemaname::text, tableowner::text from pg_tables where schemaname = any($1) \
             group by 1, 2 order by 1",
            &[&vec![enrollment_schema.clone(), collection_schema.clone()]],
        )
        .await
        .expect("owners")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        owners,
        [
            (collection_schema.clone(), env.service_role("collection")),
            (enrollment_schema.clone(), role.clone()),
        ],
        "each schema's tables belong to its service's role alone"
    );
    let attrs = admin
        .query_one(
            "select rolsuper, rolcreatedb, rolcreaterole, rolinherit from pg_roles where rolname = $1",
            &[&role],
        )
        .await
        .expect("role");
    assert_eq!(
        (
            attrs.get::<_, bool>(0),
            attrs.get::<_, bool>(1),
            attrs.get::<_, bool>(2),
            attrs.get::<_, bool>(3)
        ),
        (false, false, false, false),
        "no superuser, no database or role creation, nothing inherited"
    );
    drop(admin);
    let _ = driver.await;

    // As enrollment's role, on the connection settings the service uses.
    let pool = platform::db::connect(&DatabaseSettings {
        pool_size: 1,
        ..env.service_settings("enrollment").database
    })
    .await
    .expect("enrollment's role connects");
    let client = pool.get().await.expect("a connection");
    let own: i64 = client
        .query_one("select count(*) from persons", &[])
        .await
        .expect("its own tables")
        .get(0);
    assert_eq!(own, 0);
    refused(
        "reading collection's tables",
        client
            .query(&format!("select count(*) from {collection_schema}.persons"), &[])
            .await,
    );
    refused(
        "creating a table in collection's schema",
        client
            .batch_execute(&format!("create table {collection_schema}.intruder (i int)"))
            .await,
    );
    refused(
        "creating a schema",
        client.batch_execute("create schema intruder").await,
    );
    refused(
        "creating a table in public",
        client.batch_execute("create table public.intruder (i int)").await,
    );
}

#[tokio::test]
async fn a_service_role_cannot_make_a_schema_the_operator_did_not_provision() {
    let env = TestEnv::new();
    let mut settings = env.service_settings("enrollment").database;
    // Its own role, another schema name: start-up stops with what to do.
    settings.schema = format!("{}_other", env.schema("enrollment"));
    let err = platform::db::connect(&settings)
        .await
        .expect_err("a role without CREATE on the database");
    let text = format!("{err:#}");
    assert!(
        text.contains("does not exist and this role may not create it")
            && text.contains("insurancectl accounts apply"),
        "{text}"
    );
}
