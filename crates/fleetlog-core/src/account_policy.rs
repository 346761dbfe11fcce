//! The account-wide alternative to per-group filters: one CloudWatch Logs subscription filter policy
//! (`PutAccountPolicy`, `SUBSCRIPTION_FILTER_POLICY`) delivers every log group of the account and
//! Region to the pipeline, except those its selection criteria name. fleetlog's own Lambda and
//! Firehose groups are always excluded: subscribed, the ETL's own logs would feed the ETL (CloudWatch
//! Logs User Guide, "Account-level subscription filters": use selection criteria to exclude the log
//! groups of the delivery workflow, or risk an infinite recursive loop).
//!
//! Facts this relies on (CloudWatch Logs API reference, PutAccountPolicy): one subscription filter
//! policy per account and Region; its selection criteria take only `LogGroupName NOT IN [...]`, at
//! most 25 KB; a destination other than Lambda needs `iam:PassRole` on its role.

/// The policy's name (the stack's `AccountSubscriptionPolicy`).
pub const POLICY_NAME: &str = "fleetlog";

/// The most the selection criteria may hold (PutAccountPolicy, `selectionCriteria`).
pub const MAX_SELECTION_CRITERIA_BYTES: usize = 25 * 1024;

/// The log groups of stack `stack`'s own Lambdas and delivery stream, as the template names them.
pub fn own_log_groups(stack: &str) -> Vec<String> {
    vec![
        format!("/aws/lambda/{stack}-enroller"),
        format!("/aws/lambda/{stack}-etl"),
        format!("/aws/kinesisfirehose/{stack}"),
    ]
}

/// `LogGroupName NOT IN ["…", …]`: every group but `excluded`.
pub fn selection_criteria(excluded: &[String]) -> String {
    format!("LogGroupName NOT IN {}", serde_json::Value::from(excluded.to_vec()))
}

/// Whether `criteria` (as [`selection_criteria`] writes them, spacing aside) leave `group` out. Criteria
/// of another form are read as excluding nothing.
pub fn excludes(criteria: &str, group: &str) -> bool {
    let Some(list) = criteria.trim().strip_prefix("LogGroupName").map(str::trim_start) else { return false };
    let Some(list) = list.strip_prefix("NOT IN") else { return false };
    serde_json::from_str::<Vec<String>>(list.trim()).is_ok_and(|names| names.iter().any(|n| n == group))
}

/// The policy document: every event of the selected groups to `destination_arn`, with `role_arn`
/// where the destination needs one.
pub fn policy_document(destination_arn: &str, role_arn: Option<&str>, filter_pattern: &str) -> serde_json::Value {
    let mut document = serde_json::json!({
        "DestinationArn": destination_arn,
        "FilterPattern": filter_pattern,
        "Distribution": "Random",
    });
    if let Some(role) = role_arn {
        document["RoleArn"] = role.into();
    }
    document
}

/// What delivers one of fleetlog's log groups to the pipeline: fleetlog's filter, fleetlog's account
/// policy (named [`POLICY_NAME`], where its criteria select the group), both (each event twice), or
/// nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Delivery {
    Filter,
    AccountPolicy,
    FilterAndAccountPolicy,
    Nothing,
}

impl Delivery {
    /// `policy_criteria`: the selection criteria of fleetlog's account policy, if there is one.
    pub fn of(group: &str, has_filter: bool, policy_criteria: Option<&str>) -> Self {
        let by_policy = policy_criteria.is_some_and(|criteria| !excludes(criteria, group));
        match (has_filter, by_policy) {
            (true, false) => Self::Filter,
            (false, true) => Self::AccountPolicy,
            (true, true) => Self::FilterAndAccountPolicy,
            (false, false) => Self::Nothing,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Filter => "filter",
            Self::AccountPolicy => "account policy",
            Self::FilterAndAccountPolicy => "filter and account policy: each event twice",
            Self::Nothing => "NOT subscribed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_selection_criteria_leave_out_the_pipelines_own_groups() {
        let own = own_log_groups("fleetlog");
        let criteria = selection_criteria(&own);
        assert_eq!(
            criteria,
            r#"LogGroupName NOT IN ["/aws/lambda/fleetlog-enroller","/aws/lambda/fleetlog-etl","/aws/kinesisfirehose/fleetlog"]"#
        );
        assert!(criteria.len() <= MAX_SELECTION_CRITERIA_BYTES);
        for group in &own {
            assert!(excludes(&criteria, group), "{group}");
        }
        assert!(!excludes(&criteria, "CCP-logs-acme-123456789012-us-east-1/system"));
        assert!(excludes(r#" LogGroupName  NOT IN [ "a" ] "#, "a"), "spacing aside");
        assert!(!excludes("LogGroupNamePrefix IN [\"a\"]", "a"), "another form excludes nothing");
    }

    #[test]
    fn a_group_is_delivered_by_its_filter_the_policy_or_both() {
        let criteria = selection_criteria(&own_log_groups("fleetlog"));
        let group = "CCP-logs-acme-123456789012-us-east-1/system";
        assert_eq!(Delivery::of(group, true, None), Delivery::Filter);
        assert_eq!(Delivery::of(group, false, Some(&criteria)), Delivery::AccountPolicy);
        assert_eq!(Delivery::of(group, true, Some(&criteria)), Delivery::FilterAndAccountPolicy);
        assert_eq!(Delivery::of(group, false, None), Delivery::Nothing);
        assert_eq!(Delivery::of("/aws/lambda/fleetlog-etl", false, Some(&criteria)), Delivery::Nothing, "excluded");
        assert_eq!(serde_json::to_value(Delivery::AccountPolicy).unwrap(), "account-policy");
    }

    #[test]
    fn the_document_names_the_role_only_where_there_is_one() {
        let with = policy_document("arn:aws:logs:us-east-1:210987654321:destination:fleetlog-logs", Some("arn:r"), "");
        assert_eq!(with["RoleArn"], "arn:r");
        assert_eq!(with["Distribution"], "Random");
        let without = policy_document("arn:aws:lambda:us-east-1:123456789012:function:f", None, "ERROR");
        assert!(without.get("RoleArn").is_none());
        assert_eq!(without["FilterPattern"], "ERROR");
    }
}
