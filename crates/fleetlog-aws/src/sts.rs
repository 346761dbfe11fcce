//! Who the caller is: the account id log group prefixes are built from.

use aws_config::SdkConfig;

use crate::error::{AwsError, ErrorKind, classify};

/// The account of the credentials in `config` (GetCallerIdentity, which needs no permission).
pub async fn account_id(config: &SdkConfig) -> Result<String, AwsError> {
    let identity = aws_sdk_sts::Client::new(config)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| classify("sts:GetCallerIdentity", e))?;
    identity
        .account()
        .map(str::to_owned)
        .ok_or_else(|| AwsError::new("sts:GetCallerIdentity", ErrorKind::Transient, "STS returned no account id"))
}
