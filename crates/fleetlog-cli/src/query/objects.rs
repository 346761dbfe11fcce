//! The objects `query --local` reads: S3 objects under a prefix or files under a folder, listed
//! first and opened as a scan reaches them.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result, bail};

use fleetlog_core::schema::{Partition, key_partition};

use super::table::ObjectsTable;

/// Where `--local` reads records from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalSource {
    /// `s3://bucket/prefix` (AWS, or the emulator with `--endpoint-url`).
    S3 { bucket: String, prefix: String },
    /// A folder of downloaded objects (searched recursively; `.gz` or plain).
    Dir(PathBuf),
}

impl LocalSource {
    pub fn parse(text: &str) -> Self {
        match text.strip_prefix("s3://") {
            Some(rest) => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                Self::S3 { bucket: bucket.to_owned(), prefix: prefix.to_owned() }
            }
            None => Self::Dir(PathBuf::from(text)),
        }
    }
}

/// The objects `query --local` reads: listed first, read while the query runs.
#[derive(Debug)]
pub struct LocalObjects {
    pub(super) place: ObjectPlace,
    names: Vec<String>,
    /// Each object's [`key_partition`].
    pub(super) partitions: Vec<Option<Partition>>,
    /// What the progress bar says it reads.
    pub(super) label: String,
    /// Which objects have been read (to their end, or as far as a query needed them).
    pub(super) read: Vec<AtomicBool>,
}

#[derive(Debug)]
pub(super) enum ObjectPlace {
    S3 { client: aws_sdk_s3::Client, bucket: String },
    Folder,
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            files_under(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// S3 objects read at once (one per partition of a scan).
pub(super) const CONCURRENT_GETS: usize = 8;

impl LocalObjects {
    fn new(place: ObjectPlace, names: Vec<String>, label: String) -> Self {
        let partitions = names.iter().map(|name| key_partition(name)).collect();
        let read = names.iter().map(|_| AtomicBool::new(false)).collect();
        Self { place, names, partitions, label, read }
    }

    /// Every object under `s3://bucket/prefix`.
    pub async fn in_s3(client: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Result<Self> {
        let names = fleetlog_aws::s3::list_keys(client, bucket, prefix).await?;
        let place = ObjectPlace::S3 { client: client.clone(), bucket: bucket.to_owned() };
        Ok(Self::new(place, names, format!("reading objects under s3://{bucket}/{prefix}")))
    }

    /// Every file under a folder of downloaded objects.
    pub fn in_folder(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            bail!("{} is not a folder (give a folder of log objects or s3://bucket/prefix)", dir.display());
        }
        let mut files = Vec::new();
        files_under(dir, &mut files)?;
        files.sort();
        let names = files.iter().map(|f| f.display().to_string()).collect();
        Ok(Self::new(ObjectPlace::Folder, names, format!("reading files under {}", dir.display())))
    }

    pub fn count(&self) -> usize {
        self.names.len()
    }

    pub(super) fn display_name(&self, index: usize) -> String {
        match &self.place {
            ObjectPlace::S3 { bucket, .. } => format!("s3://{bucket}/{}", self.names[index]),
            ObjectPlace::Folder => self.names[index].clone(),
        }
    }

    /// Object `index`, to be read on a blocking thread: an S3 object's bytes are fetched now, a
    /// file is opened (and read as it is decoded).
    pub(super) async fn open(&self, index: usize) -> Result<Box<dyn Read + Send>> {
        match &self.place {
            ObjectPlace::S3 { client, bucket } => {
                let bytes = fleetlog_aws::s3::get_object(client, bucket, &self.names[index]).await?;
                Ok(Box::new(std::io::Cursor::new(bytes)))
            }
            ObjectPlace::Folder => {
                let name = &self.names[index];
                Ok(Box::new(std::fs::File::open(name).with_context(|| format!("reading {name}"))?))
            }
        }
    }

    /// The objects' records as a table that reads them while a query runs, so memory holds a few
    /// objects' records at a time, not all of them: each partition of a scan reads its share of the
    /// objects one after another (S3 objects eight at a time in all, files one per core), decoding
    /// on a blocking thread. A progress bar counts the objects on a terminal when there are many.
    pub fn into_table(self, show_progress: bool) -> Arc<ObjectsTable> {
        Arc::new(ObjectsTable { objects: Arc::new(self), show_progress })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse() {
        assert_eq!(LocalSource::parse("s3://b/logs/"), LocalSource::S3 { bucket: "b".into(), prefix: "logs/".into() });
        assert_eq!(LocalSource::parse("s3://b"), LocalSource::S3 { bucket: "b".into(), prefix: String::new() });
        assert_eq!(LocalSource::parse("/tmp/x"), LocalSource::Dir("/tmp/x".into()));
    }
}
