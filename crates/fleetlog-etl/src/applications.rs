//! Whose a log source is: the application of an instance as its tags said at enrollment (the
//! enrollment table keeps it), else the reference file's entry for the instance or the host, else
//! `unknown` ([`fleetlog_core::reference::application_of`] decides). A container reads each instance
//! once per [`TAG_TTL`] and checks the reference file's ETag at most once per [`REFERENCE_CHECK`], so a
//! batch costs no call for sources it has seen.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_smithy_types::error::display::DisplayErrorContext;
use fleetlog_aws::store::EnrollmentStore;
use fleetlog_core::reference::{Reference, application_of};

/// How long an instance's application is kept before it is read again (a tag changed at
/// re-enrollment shows within this).
pub const TAG_TTL: Duration = Duration::from_secs(600);
/// How often the reference file's ETag is checked.
pub const REFERENCE_CHECK: Duration = Duration::from_secs(60);
/// The most instances a container remembers: streams named like instances that no table knows stay
/// a bounded cost (the oldest readings are forgotten first, then all).
pub const MAX_INSTANCES: usize = 50_000;

/// What one batch knows of its sources: the applications of the instances it holds, and the
/// reference file as it stood.
#[derive(Debug, Clone, Default)]
pub struct Applications {
    tagged: HashMap<String, String>,
    reference: Arc<Reference>,
}

impl Applications {
    pub fn new(tagged: HashMap<String, String>, reference: Arc<Reference>) -> Self {
        Self { tagged, reference }
    }

    /// The application of a source: its instance (the stream it is named after) or its host.
    pub fn of(&self, instance_id: Option<&str>, host: Option<&str>) -> &str {
        let tagged = instance_id.and_then(|id| self.tagged.get(id)).map(String::as_str);
        application_of(tagged, &self.reference, instance_id, host)
    }

    /// The application a client address belongs to, when the reference file names it.
    pub fn of_client(&self, address: &str) -> Option<&str> {
        self.reference.of_address(address).map(|owner| owner.application.as_str())
    }
}

/// Where applications are read, and what this container has read.
#[derive(Debug)]
pub struct ApplicationSource {
    s3: aws_sdk_s3::Client,
    store: Option<EnrollmentStore>,
    reference_object: Option<(String, String)>,
    reference_check: Duration,
    max_instances: usize,
    cache: tokio::sync::Mutex<Cache>,
}

#[derive(Debug, Default)]
struct Cache {
    /// Each instance's application (`None`: untagged), and when it was read.
    instances: HashMap<String, (Option<String>, Instant)>,
    reference: Arc<Reference>,
    etag: Option<String>,
    checked: Option<Instant>,
}

impl ApplicationSource {
    pub fn new(
        s3: aws_sdk_s3::Client,
        store: Option<EnrollmentStore>,
        reference_object: Option<(String, String)>,
    ) -> Self {
        Self {
            s3,
            store,
            reference_object,
            reference_check: REFERENCE_CHECK,
            max_instances: MAX_INSTANCES,
            cache: tokio::sync::Mutex::default(),
        }
    }

    /// Checks the reference file's ETag every `interval` instead of [`REFERENCE_CHECK`] (tests).
    #[must_use]
    pub fn checking_every(mut self, interval: Duration) -> Self {
        self.reference_check = interval;
        self
    }

    /// Remembers at most `max` instances instead of [`MAX_INSTANCES`] (tests).
    #[must_use]
    pub fn remembering(mut self, max: usize) -> Self {
        self.max_instances = max;
        self
    }

    /// How many instances this container remembers.
    pub async fn remembered(&self) -> usize {
        self.cache.lock().await.instances.len()
    }

    /// What a batch holding `instance_ids` needs. Sources that cannot be read now are `unknown`
    /// for this batch (and asked again by the next one); reading never fails a batch.
    pub async fn for_instances(&self, instance_ids: impl IntoIterator<Item = String>) -> Applications {
        let mut cache = self.cache.lock().await;
        let now = Instant::now();
        self.refresh_reference(&mut cache, now).await;
        let mut wanted: Vec<String> = instance_ids.into_iter().collect();
        wanted.sort();
        wanted.dedup();
        let stale: Vec<String> = wanted
            .iter()
            .filter(|id| cache.instances.get(*id).is_none_or(|(_, at)| now.duration_since(*at) >= TAG_TTL))
            .cloned()
            .collect();
        if cache.instances.len() + stale.len() > self.max_instances {
            cache.instances.retain(|_, (_, at)| now.duration_since(*at) < TAG_TTL);
            if cache.instances.len() + stale.len() > self.max_instances {
                cache.instances.clear();
            }
        }
        if let (Some(store), false) = (&self.store, stale.is_empty()) {
            match store.get_many(&stale).await {
                Ok(records) => {
                    for id in stale {
                        let application = records.get(&id).and_then(|r| r.application.clone());
                        cache.instances.insert(id, (application, now));
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, instances = stale.len(), "Could not read instances' applications; unknown for this batch")
                }
            }
        }
        let tagged = wanted
            .into_iter()
            .filter_map(|id| {
                let application = cache.instances.get(&id)?.0.clone()?;
                Some((id, application))
            })
            .collect();
        Applications::new(tagged, Arc::clone(&cache.reference))
    }

    /// Reads the reference file again when its ETag changed; a file that cannot be read or used
    /// leaves the one in use.
    async fn refresh_reference(&self, cache: &mut Cache, now: Instant) {
        let Some((bucket, key)) = &self.reference_object else { return };
        if cache.checked.is_some_and(|at| now.duration_since(at) < self.reference_check) {
            return;
        }
        cache.checked = Some(now);
        let request = self.s3.get_object().bucket(bucket).key(key).set_if_none_match(cache.etag.clone());
        let object = match request.send().await {
            Ok(object) => object,
            Err(error) if error.raw_response().is_some_and(|r| r.status().as_u16() == 304) => return,
            Err(error) => {
                tracing::warn!(error = %DisplayErrorContext(&error), bucket, key, "Could not read the reference file; the one in use stays");
                return;
            }
        };
        let etag = object.e_tag().map(str::to_owned);
        let body = match object.body.collect().await {
            Ok(body) => body.into_bytes(),
            Err(error) => {
                tracing::warn!(%error, bucket, key, "Could not read the reference file; the one in use stays");
                return;
            }
        };
        match Reference::parse(&body) {
            Ok(reference) => {
                tracing::info!(bucket, key, entries = reference.len(), etag, "Reference file loaded");
                cache.reference = Arc::new(reference);
                cache.etag = etag;
            }
            Err(error) => tracing::warn!(%error, bucket, key, "Reference file refused; the one in use stays"),
        }
    }
}
