//! The enrollment table (DynamoDB): one item per instance fleetlog has enrolled.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, KeysAndAttributes, ScalarAttributeType,
};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use fleetlog_core::record::{EnrollmentRecord, EnrollmentStatus};
use fleetlog_core::tags::Ownership;

use crate::error::{AwsError, ErrorKind, classify};

/// BatchGetItem accepts at most 100 keys.
const MAX_BATCH_GET: usize = 100;
/// Unprocessed keys are retried this many times before the read is reported as throttled.
const MAX_UNPROCESSED_ROUNDS: u32 = 5;
/// The wait before the first retry of unprocessed keys, doubled for each next one (25 ms to 200 ms):
/// keys come back unprocessed when the table is throttled, which retrying at once only prolongs.
const UNPROCESSED_FIRST_DELAY: std::time::Duration = std::time::Duration::from_millis(25);
/// How long a claim holds (seconds): twice the enroller's 60 s timeout. A run that dies holding one
/// delays that instance's enrollment by at most this.
pub const CLAIM_SECONDS: i64 = 120;

/// The answer to [`EnrollmentStore::claim`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This run enrolls the instance. The claim ends when its record is written, or is released.
    Granted,
    /// Another run has just enrolled it with this config version.
    AlreadyCurrent,
    /// Another run is enrolling it now.
    Held,
}

#[derive(Debug, Clone)]
pub struct EnrollmentStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl EnrollmentStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Creates the table (on-demand billing) if it does not exist. For local runs and tests; the stack
    /// creates it in AWS.
    pub async fn create_table_if_missing(&self) -> Result<(), AwsError> {
        let result = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("instance_id")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(build_error)?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("instance_id")
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(build_error)?,
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_in_use_exception()) => Ok(()),
            Err(e) => Err(classify("dynamodb:CreateTable", e)),
        }
    }

    /// Records by instance id (strongly consistent, so a duplicate right after an enrollment sees it).
    pub async fn get_many(&self, ids: &[String]) -> Result<BTreeMap<String, EnrollmentRecord>, AwsError> {
        let mut out = BTreeMap::new();
        for chunk in ids.chunks(MAX_BATCH_GET) {
            let keys: Vec<_> = chunk.iter().map(|id| HashMap::from([("instance_id".to_owned(), s(id))])).collect();
            let mut request = Some(
                KeysAndAttributes::builder().set_keys(Some(keys)).consistent_read(true).build().map_err(build_error)?,
            );
            let (mut rounds, mut delay) = (0, UNPROCESSED_FIRST_DELAY);
            while let Some(keys) = request.take() {
                if rounds > 0 {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                let mut resp = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, keys)
                    .send()
                    .await
                    .map_err(|e| classify("dynamodb:BatchGetItem", e))?;
                for item in resp.responses.take().and_then(|mut r| r.remove(&self.table)).into_iter().flatten() {
                    if let Some(record) = from_item(item)? {
                        out.insert(record.instance_id.clone(), record);
                    }
                }
                request = resp
                    .unprocessed_keys
                    .take()
                    .and_then(|mut u| u.remove(&self.table))
                    .filter(|keys| !keys.keys().is_empty());
                rounds += 1;
                if request.is_some() && rounds >= MAX_UNPROCESSED_ROUNDS {
                    return Err(AwsError::new(
                        "dynamodb:BatchGetItem",
                        ErrorKind::Transient,
                        "keys left unprocessed (throttled)",
                    ));
                }
            }
        }
        Ok(out)
    }

    pub async fn get(&self, id: &str) -> Result<Option<EnrollmentRecord>, AwsError> {
        Ok(self.get_many(&[id.to_owned()]).await?.remove(id))
    }

    /// Claims an instance before enrolling it with this config version, so two runs that both read it
    /// as not enrolled (duplicate deliveries in two batches at once) do not both send it commands: a
    /// conditional write on its item, granted unless another unexpired claim is on it or it is already
    /// current for this config version at `now` (epoch seconds; see [`EnrollmentRecord::is_current`]).
    pub async fn claim(
        &self,
        id: &str,
        config_parameter: &str,
        config_version: i64,
        owner: &str,
        now: i64,
    ) -> Result<Claim, AwsError> {
        let result = self
            .claim_request(
                id,
                owner,
                now,
                "NOT (config_parameter = :parameter AND config_version = :version \
                      AND (#status IN (:enrolling, :enrolled) \
                           OR (#status = :failed AND (attribute_not_exists(retry_at) OR retry_at > :now))))",
            )
            .expression_attribute_values(":enrolling", s(EnrollmentStatus::Enrolling.as_str()))
            .expression_attribute_values(":enrolled", s(EnrollmentStatus::Enrolled.as_str()))
            .expression_attribute_values(":failed", s(EnrollmentStatus::Failed.as_str()))
            .expression_attribute_values(":parameter", s(config_parameter))
            .expression_attribute_values(":version", n(config_version))
            .send()
            .await;
        if condition_held(result, "dynamodb:UpdateItem")? {
            return Ok(Claim::Granted);
        }
        let current = self.get(id).await?.is_some_and(|r| r.is_current(config_parameter, config_version, now));
        Ok(if current { Claim::AlreadyCurrent } else { Claim::Held })
    }

    /// Claims an instance whose command failed, for an operator's retry: granted unless another
    /// unexpired claim is on it, or it is no longer `failed`.
    pub async fn claim_failed(&self, id: &str, owner: &str, now: i64) -> Result<Claim, AwsError> {
        let result = self
            .claim_request(id, owner, now, "#status = :failed")
            .expression_attribute_values(":failed", s(EnrollmentStatus::Failed.as_str()))
            .send()
            .await;
        Ok(if condition_held(result, "dynamodb:UpdateItem")? { Claim::Granted } else { Claim::Held })
    }

    /// Claims an enrolled instance before offboarding it, so an enrollment running at the same time
    /// cannot write its record over the offboarding (or the other way round). `false`: another run
    /// holds it.
    pub async fn claim_for_offboarding(&self, id: &str, owner: &str, now: i64) -> Result<bool, AwsError> {
        let result = self.claim_request(id, owner, now, "attribute_exists(#status)").send().await;
        condition_held(result, "dynamodb:UpdateItem")
    }

    /// A claim on the item by `owner` until `now` + [`CLAIM_SECONDS`], granted when no other
    /// unexpired claim is on it and `condition` (which may name `#status` and `:now`) holds.
    fn claim_request(
        &self,
        id: &str,
        owner: &str,
        now: i64,
        condition: &str,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("instance_id", s(id))
            .update_expression("SET claim_owner = :owner, claim_expires = :expires")
            .condition_expression(format!(
                "(attribute_not_exists(claim_expires) OR claim_expires < :now) AND ({condition})"
            ))
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":expires", n(now + CLAIM_SECONDS))
            .expression_attribute_values(":now", n(now))
    }

    /// Writes the record that ends `owner`'s claim, if the claim is still `owner`'s (it may have
    /// expired and been taken by another run, whose write then wins). `false`: not written.
    pub async fn put_claimed(&self, record: &EnrollmentRecord, owner: &str) -> Result<bool, AwsError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(record)?))
            .condition_expression("claim_owner = :owner")
            .expression_attribute_values(":owner", s(owner))
            .send()
            .await;
        condition_held(result, "dynamodb:PutItem")
    }

    /// Records a command's outcome: the status, failure and retry time of `record`, written only while
    /// the item is still `enrolling` with that command (a newer enrollment or an offboarding wins; a
    /// duplicate report finds nothing to change). `false`: not written.
    pub async fn record_outcome(&self, record: &EnrollmentRecord, command_id: &str) -> Result<bool, AwsError> {
        let mut set = vec!["#status = :status", "updated_at = :updated"];
        let mut remove = Vec::new();
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("instance_id", s(&record.instance_id))
            .condition_expression("#status = :enrolling AND contains(command_ids, :command)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", s(record.status.as_str()))
            .expression_attribute_values(":updated", s(&record.updated_at))
            .expression_attribute_values(":enrolling", s(EnrollmentStatus::Enrolling.as_str()))
            .expression_attribute_values(":command", s(command_id));
        match &record.failure {
            Some(failure) => {
                let value = serde_dynamo::to_attribute_value(failure).map_err(|e| {
                    AwsError::new("dynamodb", ErrorKind::Permanent, format!("failure of {}: {e}", record.instance_id))
                })?;
                set.push("failure = :failure");
                request = request.expression_attribute_values(":failure", value);
            }
            None => remove.push("failure"),
        }
        match record.retry_at {
            Some(at) => {
                set.push("retry_at = :retry");
                request = request.expression_attribute_values(":retry", n(at));
            }
            None => remove.push("retry_at"),
        }
        let expression = update_expression(&set, &remove);
        let result = request.update_expression(expression).send().await;
        condition_held(result, "dynamodb:UpdateItem")
    }

    /// Records the newest log event time the pipeline carried for an instance, unless the record
    /// already has a newer one. Items without a record (or only a claim) are left alone. `false`: not
    /// written.
    pub async fn record_logs_seen(&self, id: &str, newest_ms: i64) -> Result<bool, AwsError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("instance_id", s(id))
            .update_expression("SET last_log_at = :seen")
            .condition_expression(
                "attribute_exists(#status) AND (attribute_not_exists(last_log_at) OR last_log_at < :seen)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":seen", n(newest_ms))
            .send()
            .await;
        condition_held(result, "dynamodb:UpdateItem")
    }

    /// Writes the application and owner an instance's tags name now into its record (a name the
    /// tags no longer give is removed). Items without a record (or only a claim) are left alone.
    /// `false`: not written.
    pub async fn record_ownership(&self, id: &str, ownership: &Ownership) -> Result<bool, AwsError> {
        let (mut set, mut remove) = (Vec::new(), Vec::new());
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("instance_id", s(id))
            .condition_expression("attribute_exists(#status)")
            .expression_attribute_names("#status", "status");
        // `owner` is a DynamoDB reserved word: both names go by placeholders.
        for (attribute, value) in [("application", &ownership.application), ("owner", &ownership.owner)] {
            let name = format!("#{attribute}");
            request = request.expression_attribute_names(&name, attribute);
            match value {
                Some(value) => {
                    set.push(format!("{name} = :{attribute}"));
                    request = request.expression_attribute_values(format!(":{attribute}"), s(value));
                }
                None => remove.push(name),
            }
        }
        let result = request.update_expression(update_expression(&set, &remove)).send().await;
        condition_held(result, "dynamodb:UpdateItem")
    }

    /// Ends this owner's claim on an instance it did not enroll, so a retry need not wait for it to
    /// expire. An item that held only the claim (a first enrollment) is deleted; a record keeps
    /// everything but the claim. A claim that is no longer this owner's is left alone.
    pub async fn release(&self, id: &str, owner: &str) -> Result<(), AwsError> {
        let only_claim = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("instance_id", s(id))
            .condition_expression("claim_owner = :owner AND attribute_not_exists(#status)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":owner", s(owner))
            .send()
            .await;
        if condition_held(only_claim, "dynamodb:DeleteItem")? {
            return Ok(());
        }
        let on_record = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("instance_id", s(id))
            .update_expression("REMOVE claim_owner, claim_expires")
            .condition_expression("claim_owner = :owner")
            .expression_attribute_values(":owner", s(owner))
            .send()
            .await;
        // A claim that is no longer this owner's is not an error.
        condition_held(on_record, "dynamodb:UpdateItem").map(drop)
    }

    /// Every record not offboarded (paginated scan; used by reconcile).
    pub async fn list_active(&self) -> Result<Vec<EnrollmentRecord>, AwsError> {
        let mut pages = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("#s <> :offboarded")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":offboarded", s(EnrollmentStatus::Offboarded.as_str()))
            .consistent_read(true)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify("dynamodb:Scan", e))?;
            for item in page.items.unwrap_or_default() {
                out.extend(from_item(item)?);
            }
        }
        Ok(out)
    }
}

/// Whether a conditional write went through: `false` when it was refused because its condition did
/// not hold; any other failure is classified as `operation`'s error.
fn condition_held<T, E>(result: Result<T, SdkError<E, HttpResponse>>, operation: &'static str) -> Result<bool, AwsError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_service_error().and_then(ProvideErrorMetadata::code) == Some("ConditionalCheckFailedException") =>
        {
            Ok(false)
        }
        Err(e) => Err(classify(operation, e)),
    }
}

fn build_error(e: aws_sdk_dynamodb::error::BuildError) -> AwsError {
    AwsError::new("dynamodb", ErrorKind::Permanent, e.to_string())
}

/// An UpdateExpression of `set` assignments and `remove`d names, either list possibly empty.
fn update_expression(set: &[impl AsRef<str>], remove: &[impl AsRef<str>]) -> String {
    let clause = |verb: &str, items: Vec<&str>| (!items.is_empty()).then(|| format!("{verb} {}", items.join(", ")));
    let set = clause("SET", set.iter().map(AsRef::as_ref).collect());
    let remove = clause("REMOVE", remove.iter().map(AsRef::as_ref).collect());
    [set, remove].into_iter().flatten().collect::<Vec<_>>().join(" ")
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// An enrollment record as its item (claim attributes are not part of it: a put ends the claim).
fn to_item(record: &EnrollmentRecord) -> Result<HashMap<String, AttributeValue>, AwsError> {
    serde_dynamo::to_item(record).map_err(|e| {
        AwsError::new("dynamodb", ErrorKind::Permanent, format!("enrollment record {}: {e}", record.instance_id))
    })
}

/// The record an item holds. An item without a status holds only a claim (of a first enrollment
/// that has not finished, or failed and released it): no record.
fn from_item(item: HashMap<String, AttributeValue>) -> Result<Option<EnrollmentRecord>, AwsError> {
    if !item.contains_key("status") {
        return Ok(None);
    }
    // For the error, which no longer has the item.
    let id = item.get("instance_id").and_then(|v| v.as_s().ok()).map_or("(no instance_id)".to_owned(), String::clone);
    serde_dynamo::from_item(item).map(Some).map_err(|e| {
        AwsError::new(
            "dynamodb",
            ErrorKind::Permanent,
            format!("enrollment item {id} is not a record fleetlog wrote: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::operation::batch_get_item::{BatchGetItemInput, BatchGetItemOutput};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::*;

    fn record(id: &str) -> EnrollmentRecord {
        EnrollmentRecord {
            instance_id: id.into(),
            command_ids: vec![],
            sent_at: None,
            updated_at: "2026-11-30T00:00:00Z".into(),
            ..EnrollmentRecord::sample(EnrollmentStatus::Enrolled)
        }
    }

    /// What a throttled table answers: the item of the first key asked for, the others unprocessed.
    fn first_item_only(input: &BatchGetItemInput) -> BatchGetItemOutput {
        let keys =
            input.request_items().and_then(|items| items.get("t")).map(|k| k.keys().to_vec()).unwrap_or_default();
        let id = |key: &HashMap<String, AttributeValue>| key["instance_id"].as_s().cloned().unwrap_or_default();
        let (first, rest) = keys.split_first().map_or((None, &[][..]), |(first, rest)| (Some(first), rest));
        let item = first.map(|key| to_item(&record(&id(key))).unwrap());
        let unprocessed = KeysAndAttributes::builder().set_keys(Some(rest.to_vec())).build().unwrap();
        BatchGetItemOutput::builder()
            .responses("t", item.into_iter().collect())
            .unprocessed_keys("t", unprocessed)
            .build()
    }

    #[tokio::test]
    async fn unprocessed_keys_are_asked_for_again_after_a_pause() {
        let rule = mock!(aws_sdk_dynamodb::Client::batch_get_item).then_compute_output(first_item_only);
        let store = EnrollmentStore::new(mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, &[&rule]), "t");
        let ids: Vec<String> = ["i-1", "i-2", "i-3"].map(String::from).to_vec();
        let started = std::time::Instant::now();

        let read = store.get_many(&ids).await.unwrap();

        assert_eq!(read.keys().cloned().collect::<Vec<_>>(), ids);
        assert_eq!(rule.num_calls(), 3, "one call per round, the last with nothing left unprocessed");
        assert!(started.elapsed() >= UNPROCESSED_FIRST_DELAY * 3, "25 ms, then 50 ms between rounds");
    }

    #[tokio::test]
    async fn keys_that_stay_unprocessed_fail_the_read_as_throttled() {
        let rule = mock!(aws_sdk_dynamodb::Client::batch_get_item).then_compute_output(|input| {
            let keys = input.request_items().and_then(|items| items.get("t")).cloned().unwrap();
            BatchGetItemOutput::builder().unprocessed_keys("t", keys).build()
        });
        let store = EnrollmentStore::new(mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, &[&rule]), "t");

        let error = store.get_many(&["i-1".to_owned()]).await.unwrap_err();

        assert!(error.is_transient(), "{error}");
        assert_eq!(rule.num_calls(), MAX_UNPROCESSED_ROUNDS as usize);
    }

    #[test]
    fn records_round_trip_through_items() {
        let record = EnrollmentRecord {
            instance_id: "i-01234567".into(),
            status: EnrollmentStatus::Enrolled,
            platform: "windows".into(),
            config_parameter: "AmazonCloudWatch-fleetlog-windows".into(),
            config_version: 7,
            command_ids: vec!["a".into(), "b".into()],
            log_groups: vec!["g".into()],
            alarm_names: vec![],
            updated_at: "2026-11-22T00:00:00Z".into(),
            attempts: 2,
            sent_at: Some(1_764_000_000),
            retry_at: Some(1_764_000_120),
            failure: Some(fleetlog_core::command_outcome::CommandFailure {
                command_id: "b".into(),
                status: "Failed".into(),
                step: Some("agentLinux".into()),
                output: "config not found".into(),
            }),
            last_log_at: Some(1_764_000_000_123),
            application: Some("shop".into()),
            owner: Some("team-shop@example.com".into()),
        };
        let item = to_item(&record).unwrap();
        assert_eq!(item["config_version"], n(7), "numbers stay numbers, as the claim's conditions compare them");
        assert_eq!(item["status"], s("enrolled"), "the claim's condition reads the status as this string");
        assert_eq!(from_item(item.clone()).unwrap(), Some(record.clone()));
        let mut claimed = item.clone();
        claimed.insert("claim_owner".into(), s("run-1"));
        claimed.insert("claim_expires".into(), n(1));
        assert_eq!(from_item(claimed).unwrap(), Some(record.clone()), "a claim is not part of the record");
        let only_claim = HashMap::from([("instance_id".to_owned(), s("i-1")), ("claim_owner".to_owned(), s("run-1"))]);
        assert_eq!(from_item(only_claim).unwrap(), None);
        let mut broken = item.clone();
        broken.insert("status".into(), s("maybe"));
        let error = from_item(broken).unwrap_err().to_string();
        assert!(error.contains("i-01234567") && error.contains("maybe"), "{error}");
        let mut unlisted = item;
        unlisted.remove("alarm_names");
        assert_eq!(from_item(unlisted).unwrap().map(|r| r.alarm_names), Some(vec![]), "a missing list is empty");
    }
}
