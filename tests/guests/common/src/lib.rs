//! The shape most hostile test modules share, so each program is only its attack: it reads
//! `transactions` (`mcc_group`, `amount`) and contributes to one sum metric, `SPEND`, keyed by the
//! merchant category group, in isolated mode.

/// Declares `Transaction`, `BY_MCC`, `SPEND` and the module's manifest (named `$name`), and
/// exports `$run` as the module's entry point.
#[macro_export]
macro_rules! transactions_module {
    ($name:expr, $run:path) => {
        use strongroom_guest::prelude::*;

        /// A card transaction.
        #[derive(Row)]
        #[row(table = "transactions")]
        #[allow(dead_code)]
        struct Transaction {
            mcc_group: Category,
            amount: f64,
        }

        const BY_MCC: &[Domain] = &[Domain::column("transactions", "mcc_group")];
        const SPEND: Metric =
            Metric::sum("spend", BY_MCC, 0.0, 1_000.0).max_contributions_per_group(1_000_000);

        strongroom_guest::query! {
            manifest: Manifest {
                name: $name,
                version: "0.1.0",
                mode: Mode::Isolated,
                reads: &[Transaction::READS],
                metrics: &[SPEND],
                max_groups_per_entity: 100,
            },
            run: $run,
        }
    };
}
