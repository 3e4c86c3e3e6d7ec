//! Audience matching under attack: the partner's list is sealed and matched in the host, the
//! guest sees only a boolean, the policy bounds the list's size (no lookups of one person, no
//! dictionaries of every phone number), the match count is never logged or returned, and a list
//! built to single one customer out learns nothing the output gate does not release.

use std::sync::Arc;

use strongroom::data_at_rest::party::PartyKey;
use strongroom::data_at_rest::seal::seal;
use strongroom::dataset::ColumnData;
use strongroom::dataset::Dataset;
use strongroom::dataset::audience::{AUDIENCE_COLUMN, AudienceError, AudienceList};
use strongroom::dataset::schema::DatasetSchema;
use strongroom::room::Room;
use strongroom::room::jobs::{AudienceInput, JobError, JobRequest, JobStatus, run_job};
use strongroom::room::policy::Policy;
use strongroom_synthetic as synthetic;
use strongroom_tests::{example, job_request, room_with, sandbox};

const AUDIENCE_POLICY: &str = "partner = \"socialco\"\ndataset = \"bank\"\nbudget_rho = \"2.0\"\nresult_delay_seconds = 0\nmin_group_size = 20\n[audience]\nmin_size = 100\nmax_size = 5000\n";

fn bank() -> (synthetic::SyntheticBank, Arc<Dataset>) {
    let bank = synthetic::generate(600, 10.0, 42);
    let dataset = Arc::new(bank.dataset());
    (bank, dataset)
}

fn list_of(emails: Vec<String>, sealed_by: &str) -> AudienceInput {
    AudienceInput {
        list: Arc::new(AudienceList::from_values([(
            "email",
            emails.iter().map(String::as_str).collect(),
        )])),
        sha256: "ab".repeat(32),
        sealed_by: sealed_by.into(),
    }
}

fn request<'a>(
    module: &'a [u8],
    data: &Arc<Dataset>,
    audience: Option<AudienceInput>,
) -> JobRequest<'a> {
    JobRequest {
        audience,
        ..job_request(module, data)
    }
}

async fn spent(room: &Room) -> u64 {
    room.ledger()
        .status("socialco", "bank")
        .await
        .expect("status")
        .spent_nano_rho
}

async fn log_text(room: &Room) -> String {
    room.audit()
        .entries(0)
        .await
        .expect("entries")
        .iter()
        .map(|e| e.entry.clone())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_partner_list_is_matched_in_the_host_and_released_through_the_gate() {
    let (dir, room) = room_with(&Policy::parse(AUDIENCE_POLICY).expect("policy")).await;
    let (bank, data) = bank();
    // The partner writes and seals its list on its own machine, to the room's public key.
    let users = synthetic::partner_users(&bank, 100, 42);
    let partner_dir = dir.path().join("partner");
    users.write_csv(&partner_dir).expect("write list");
    let party = PartyKey::generate("socialco", &dir.path().join("socialco.key")).expect("key");
    let sealed = dir.path().join("audience.sealed");
    seal(
        &DatasetSchema::load(&partner_dir.join("schema.toml")).expect("schema"),
        &[("users".into(), partner_dir.join("users.csv"))],
        &room.keys().public,
        &party,
        1024,
        &sealed,
        false,
    )
    .expect("seal");
    let audience = AudienceInput::open(&sealed, &room, 2).expect("open list");
    assert_eq!(audience.list.members(), users.len());

    let module = example("messenger-audience");
    let result = run_job(&room, sandbox(), request(&module, &data, Some(audience)))
        .await
        .expect("job");
    assert_eq!(result.outcome, "completed");
    assert_eq!(result.status, JobStatus::Released);
    let released = result.released.expect("released");
    let bands = released
        .metrics
        .iter()
        .find(|m| m.name == "balance_band")
        .expect("balance bands");
    assert!(
        !bands.groups.is_empty(),
        "some band has 20+ matched customers"
    );

    // The log names the list and its size, never how many customers it matched.
    let log = log_text(&room).await;
    assert!(log.contains("\"members\":"), "{log}");
    assert!(log.contains("\"sealed_by\":\"socialco\""), "{log}");
    assert!(!log.to_lowercase().contains("matched"), "{log}");
    assert!(!log.contains("@example"), "no identifier reaches the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matching_needs_the_policy_and_a_list_of_the_allowed_size_sealed_by_the_partner() {
    let module = example("messenger-audience");
    let (_, data) = bank();
    let customers: Vec<String> = (1..=300)
        .map(|c| format!("customer{c}@example.com"))
        .collect();

    // No [audience] in the policy: refused, nothing charged.
    let (_d1, room) = room_with(
        &Policy::parse("partner = \"socialco\"\ndataset = \"bank\"\nbudget_rho = \"2.0\"\nresult_delay_seconds = 0\n")
            .expect("policy"),
    )
    .await;
    let refused = run_job(
        &room,
        sandbox(),
        request(&module, &data, Some(list_of(customers.clone(), "socialco"))),
    )
    .await;
    assert!(
        matches!(&refused, Err(JobError::Refused(why)) if why.code() == "audience_not_allowed" && why.to_string().contains("does not allow audience matching")),
        "{refused:?}"
    );
    assert_eq!(spent(&room).await, 0);

    let (_d2, room) = room_with(&Policy::parse(AUDIENCE_POLICY).expect("policy")).await;
    // A lookup: one customer's email. Refused before any charge.
    let lookup = run_job(
        &room,
        sandbox(),
        request(
            &module,
            &data,
            Some(list_of(vec!["customer17@example.com".into()], "socialco")),
        ),
    )
    .await;
    assert!(
        matches!(&lookup, Err(JobError::Refused(why)) if why.code() == "audience_size" && why.to_string().contains("1 members; the policy allows 100 to 5000")),
        "{lookup:?}"
    );
    // A dictionary: far more identifiers than the policy allows.
    let dictionary: Vec<String> = (0..6000).map(|i| format!("guess{i}@example.com")).collect();
    let too_many = run_job(
        &room,
        sandbox(),
        request(&module, &data, Some(list_of(dictionary, "socialco"))),
    )
    .await;
    assert!(
        matches!(&too_many, Err(JobError::Refused(why)) if why.code() == "audience_size" && why.to_string().contains("6000 members")),
        "{too_many:?}"
    );
    // A lookup dressed as an audience: 300 entities that all carry the target's address. The
    // list has 300 members but one identifier, so it is refused as the lookup it is.
    let repeated = run_job(
        &room,
        sandbox(),
        request(
            &module,
            &data,
            Some(list_of(
                vec!["customer17@example.com".into(); 300],
                "socialco",
            )),
        ),
    )
    .await;
    assert!(
        matches!(&repeated, Err(JobError::Refused(why)) if why.code() == "audience_size" && why.to_string().contains("'email' has 1 distinct identifiers")),
        "{repeated:?}"
    );
    // Another party's list.
    let borrowed = run_job(
        &room,
        sandbox(),
        request(&module, &data, Some(list_of(customers, "otherco"))),
    )
    .await;
    assert!(
        matches!(&borrowed, Err(JobError::Refused(why)) if why.code() == "audience_not_theirs" && why.to_string().contains("sealed by 'otherco'")),
        "{borrowed:?}"
    );
    assert_eq!(spent(&room).await, 0, "refusals cost nothing");
    assert!(log_text(&room).await.contains("job.refused"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_padded_around_one_customer_learns_nothing_past_the_threshold() {
    // The attack: one target's email plus 199 people who are not customers, so that any group
    // with a match is the target. Every such group is under the 20-customer threshold: nothing
    // is released, and the query is charged like any other.
    let (_d, room) = room_with(&Policy::parse(AUDIENCE_POLICY).expect("policy")).await;
    let (_, data) = bank();
    let mut padded: Vec<String> = (0..199)
        .map(|i| format!("stranger{i}@example.org"))
        .collect();
    padded.push("customer17@example.com".into());
    let module = example("messenger-audience");
    // Most of the budget in one job: the least noise a partner can buy, so a group with one
    // customer passing the threshold by noise alone is a one-in-thousands event, not a flake.
    let mut job = request(&module, &data, Some(list_of(padded, "socialco")));
    job.cost_nano = 1_500_000_000;
    let result = run_job(&room, sandbox(), job).await.expect("job");
    assert_eq!(result.outcome, "completed");
    let released = result.released.expect("released");
    for m in &released.metrics {
        assert!(
            m.groups.is_empty(),
            "metric {} released {:?}",
            m.name,
            m.groups
        );
    }
    assert_eq!(spent(&room).await, 1_500_000_000, "charged like any query");
}

// The join itself, on the dataset in memory.

#[test]
fn attach_marks_every_row_of_a_matched_entity_and_only_those() {
    let bank = synthetic::generate(30, 3.0, 11);
    let mut dataset = bank.dataset();
    // Customer 3 by email in another spelling, customer 7 by phone in another format, and a
    // stranger.
    let list = AudienceList::from_values([
        ("email", vec!["CUSTOMER3@example.com", "nobody@example.org"]),
        ("phone", vec!["", "", "(555) 000-0007"]),
    ]);
    assert_eq!(list.members(), 3);
    list.attach(&mut dataset).expect("attach");
    let customers = dataset.table("customers").expect("customers");
    let ColumnData::Bool(flags) = &customers.column(AUDIENCE_COLUMN).expect("column").data else {
        panic!("bool column")
    };
    let expected: Vec<bool> = (0..30).map(|c| c == 2 || c == 6).collect();
    assert_eq!(flags, &expected);
    // Transactions hold no identifiers: no column there.
    assert!(
        dataset
            .table("transactions")
            .expect("transactions")
            .column(AUDIENCE_COLUMN)
            .is_none()
    );
    // A second attach is refused rather than shadowing the first.
    assert_eq!(
        list.attach(&mut dataset),
        Err(AudienceError::ColumnExists("customers".into()))
    );
}

#[test]
fn a_job_on_a_shared_dataset_copies_only_the_table_that_gains_the_column() {
    let shared = Arc::new(synthetic::generate(20, 5.0, 2).dataset());
    let mut job = Arc::clone(&shared);
    let list = AudienceList::from_values([("email", vec!["customer1@example.com"])]);
    list.attach(Arc::make_mut(&mut job)).expect("attach");
    let index =
        |d: &Dataset, name: &str| d.tables.iter().position(|t| t.name == name).expect("table");
    let (c, t) = (index(&shared, "customers"), index(&shared, "transactions"));
    assert!(
        Arc::ptr_eq(&job.tables[t], &shared.tables[t]),
        "transactions stay shared"
    );
    assert!(!Arc::ptr_eq(&job.tables[c], &shared.tables[c]));
    assert!(job.tables[c].column(AUDIENCE_COLUMN).is_some());
    assert!(
        shared.tables[c].column(AUDIENCE_COLUMN).is_none(),
        "other jobs never see this job's column"
    );
}

#[test]
fn a_list_with_no_shared_identifier_is_refused() {
    let mut dataset = synthetic::generate(5, 1.0, 1).dataset();
    let list = AudienceList::from_values([("device_id", vec!["abc"])]);
    let err = list.attach(&mut dataset).expect_err("nothing in common");
    assert!(err.to_string().contains("device_id"), "{err}");
    assert!(err.to_string().contains("email, phone"), "{err}");
}
