//! Which objects a query reads: its filters on the partition columns, decided once per partition, as
//! Athena prunes partitions.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use datafusion::catalog::Session;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema};
use datafusion::datasource::listing::helpers::expr_applicable_for_cols;
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::utils::conjunction;
use datafusion::physical_expr::PhysicalExpr;

use fleetlog_core::schema::Partition;

use super::schema::{PARTITION_COLUMNS, partition_schema};

/// The objects a query's filters on the partition columns leave, as Athena prunes partitions: an object
/// whose key partition fails them is not read. Objects without one are always read (their
/// records' own values are filtered as they are read).
pub(super) fn matching(
    partitions: &[Option<Partition>],
    state: &dyn Session,
    filters: &[Expr],
) -> datafusion::error::Result<Vec<usize>> {
    let on_partition = filters
        .iter()
        .filter(|filter| expr_applicable_for_cols(&PARTITION_COLUMNS, filter))
        .map(unqualified)
        .collect::<datafusion::error::Result<Vec<_>>>()?;
    let Some(predicate) = conjunction(on_partition) else { return Ok((0..partitions.len()).collect()) };
    let columns = DFSchema::try_from(partition_schema())?;
    let predicate = state.create_physical_expr(predicate, &columns)?;
    // Objects share partitions: each is decided once.
    let mut decided: HashMap<&Partition, bool> = HashMap::new();
    let mut kept = Vec::new();
    for (index, partition) in partitions.iter().enumerate() {
        let keep = match partition {
            None => true,
            Some(partition) => match decided.entry(partition) {
                Entry::Occupied(decision) => *decision.get(),
                Entry::Vacant(undecided) => *undecided.insert(holds_for(predicate.as_ref(), partition)?),
            },
        };
        if keep {
            kept.push(index);
        }
    }
    Ok(kept)
}

/// `filter` naming columns without their table (a partition's one-row batch has none).
fn unqualified(filter: &Expr) -> datafusion::error::Result<Expr> {
    let transformed = filter.clone().transform(|e| {
        Ok(match e {
            Expr::Column(column) => Transformed::yes(Expr::Column(Column::new_unqualified(column.name))),
            other => Transformed::no(other),
        })
    })?;
    Ok(transformed.data)
}

/// Whether `predicate`, over the partition columns, is true of `partition`.
fn holds_for(predicate: &dyn PhysicalExpr, partition: &Partition) -> datafusion::error::Result<bool> {
    let values = partition.clone().map(|value| Arc::new(StringArray::from(vec![value])) as ArrayRef);
    let row = RecordBatch::try_new(partition_schema(), values.to_vec())?;
    let holds = predicate.evaluate(&row)?.into_array(1)?;
    Ok(holds.as_boolean_opt().is_some_and(|b| b.is_valid(0) && b.value(0)))
}
