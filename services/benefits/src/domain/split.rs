//! How a fee line splits by the catalogue, and how a settlement splits between the funds,
//! the personal account and cash (NHSA output names).
//!
//! Order of the settlement split (every step rounded half up to the fen, cash takes the
//! remainder so that `medfee_sumamt = fund_pay_sumamt + acct_pay + acct_mulaid_pay +
//! psn_cash_pay` holds exactly):
//! 1. the in-scope amount `inscp_scp_amt` first bears what is left of the deductible 起付线
//!    (`act_pay_dedc`);
//! 2. the pooled fund pays `ratio` of the rest (`hifp_pay`), up to what is left of its annual
//!    cap 封顶线;
//! 3. the part of the rest the pooled fund did not take because of the cap goes to the
//!    large-amount fund (310: `hifob_pay`) or serious-illness insurance (390: `hifmi_pay`) at
//!    its ratio, up to what is left of its own cap;
//! 4. the person's share, except items outside the catalogue (全自费), may be paid from the
//!    person's own account, then from a relative's under mutual aid (`acct_mulaid_pay`);
//! 5. cash `psn_cash_pay` for the rest.

use super::money::fen;
use rust_decimal::Decimal;

/// A catalogue entry as the split needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogueItem {
    pub in_scope: bool,
    pub selfpay_prop: Decimal,
    pub price_limit: Option<Decimal>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LineSplit {
    pub fulamt_ownpay_amt: Decimal,
    pub overlmt_amt: Decimal,
    pub preselfpay_amt: Decimal,
    pub inscp_scp_amt: Decimal,
}

impl std::ops::AddAssign for LineSplit {
    /// Sums over lines (a visit's, a claim's).
    fn add_assign(&mut self, l: LineSplit) {
        self.fulamt_ownpay_amt += l.fulamt_ownpay_amt;
        self.overlmt_amt += l.overlmt_amt;
        self.preselfpay_amt += l.preselfpay_amt;
        self.inscp_scp_amt += l.inscp_scp_amt;
    }
}

/// Splits one fee line of `amount` (= `cnt × pric` to the fen). Not in the catalogue or out
/// of scope: all self-paid. Above the price limit: the excess per unit × count. Of the rest,
/// the item's self-pay share first, the remainder in scope.
pub fn split_line(cnt: Decimal, pric: Decimal, amount: Decimal, item: Option<&CatalogueItem>) -> LineSplit {
    let Some(item) = item.filter(|i| i.in_scope) else {
        return LineSplit {
            fulamt_ownpay_amt: amount,
            ..Default::default()
        };
    };
    let over = match item.price_limit {
        Some(limit) if pric > limit => fen((pric - limit) * cnt).min(amount),
        _ => Decimal::ZERO,
    };
    let rest = amount - over;
    let pre = fen(rest * item.selfpay_prop);
    LineSplit {
        fulamt_ownpay_amt: fen(Decimal::ZERO),
        overlmt_amt: fen(over),
        preselfpay_amt: pre,
        inscp_scp_amt: fen(rest - pre),
    }
}

/// The fund above the pooled fund's cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LargeFund {
    /// 310: 大额医疗 (`hifob_pay`), only for persons covered by large-amount medical (330).
    Hifob,
    /// 390: serious-illness insurance 大病保险 (`hifmi_pay`).
    Hifmi,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    /// Sums over the visit's lines.
    pub medfee_sumamt: Decimal,
    pub lines: LineSplit,
    /// What is left of the deductible for this settlement (outpatient: the year's, minus
    /// what earlier settlements bore; inpatient: the admission's).
    pub deductible_left: Decimal,
    pub ratio: Decimal,
    /// What is left of the pooled fund's annual cap.
    pub pool_cap_left: Decimal,
    /// The fund above the cap, its ratio and what is left of its cap; `None`: none applies.
    pub large: Option<(LargeFund, Decimal, Decimal)>,
    /// The person's own account balance if it may be used (0 otherwise).
    pub account: Decimal,
    /// A relative's account balance under mutual aid, if any may be used (0 otherwise).
    pub mutual_aid: Decimal,
    /// Registered self-paid: no fund pays.
    pub self_pay: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Split {
    pub act_pay_dedc: Decimal,
    pub hifp_pay: Decimal,
    pub hifob_pay: Decimal,
    pub hifmi_pay: Decimal,
    pub fund_pay_sumamt: Decimal,
    pub acct_pay: Decimal,
    pub acct_mulaid_pay: Decimal,
    pub psn_cash_pay: Decimal,
}

/// A policy override under which public finance pays what the fund does not (Jinan 2020,
/// COVID-19): the patient's part (account and cash) moves to public finance, which counts in
/// the fund's total. Returns public finance's part (NHSA `oth_pay`).
pub fn finance_pays_rest(s: &mut Split) -> Decimal {
    let rest = s.acct_pay + s.acct_mulaid_pay + s.psn_cash_pay;
    s.acct_pay = Decimal::ZERO;
    s.acct_mulaid_pay = Decimal::ZERO;
    s.psn_cash_pay = Decimal::ZERO;
    s.fund_pay_sumamt += rest;
    rest
}

/// Two splits of parts of one settlement (lines settled on different terms) as one.
pub fn combine(a: Split, b: Split) -> Split {
    Split {
        act_pay_dedc: a.act_pay_dedc + b.act_pay_dedc,
        hifp_pay: a.hifp_pay + b.hifp_pay,
        hifob_pay: a.hifob_pay + b.hifob_pay,
        hifmi_pay: a.hifmi_pay + b.hifmi_pay,
        fund_pay_sumamt: a.fund_pay_sumamt + b.fund_pay_sumamt,
        acct_pay: a.acct_pay + b.acct_pay,
        acct_mulaid_pay: a.acct_mulaid_pay + b.acct_mulaid_pay,
        psn_cash_pay: a.psn_cash_pay + b.psn_cash_pay,
    }
}

pub fn split(i: &Input) -> Split {
    let zero = Decimal::ZERO;
    let mut s = Split::default();
    if !i.self_pay {
        let inscp = i.lines.inscp_scp_amt;
        s.act_pay_dedc = fen(inscp.min(i.deductible_left.max(zero)));
        let base = inscp - s.act_pay_dedc;
        let cap_left = i.pool_cap_left.max(zero);
        let pool_full = fen(base * i.ratio);
        let above = if pool_full <= cap_left {
            s.hifp_pay = pool_full;
            zero
        } else {
            s.hifp_pay = fen(cap_left);
            // The part of the base whose pooled share the cap left unpaid.
            (base - fen(cap_left / i.ratio)).max(zero)
        };
        if let Some((fund, ratio, left)) = i.large {
            let pay = fen(above * ratio).min(fen(left.max(zero)));
            match fund {
                LargeFund::Hifob => s.hifob_pay = pay,
                LargeFund::Hifmi => s.hifmi_pay = pay,
            }
        }
    }
    s.fund_pay_sumamt = s.hifp_pay + s.hifob_pay + s.hifmi_pay;
    let personal = i.medfee_sumamt - s.fund_pay_sumamt;
    let account_payable = (personal - i.lines.fulamt_ownpay_amt).max(zero);
    s.acct_pay = fen(account_payable.min(i.account.max(zero)));
    s.acct_mulaid_pay = fen((account_payable - s.acct_pay).min(i.mutual_aid.max(zero)));
    s.psn_cash_pay = fen(personal - s.acct_pay - s.acct_mulaid_pay);
    // Every part on the fen grid with two decimals, zeros included.
    for v in [
        &mut s.act_pay_dedc,
        &mut s.hifp_pay,
        &mut s.hifob_pay,
        &mut s.hifmi_pay,
        &mut s.fund_pay_sumamt,
    ] {
        *v = fen(*v);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    /// An inpatient stay at a tertiary hospital under the seed's (placeholder) 310 figures.
    fn stay(inscp: &str) -> Input {
        Input {
            medfee_sumamt: d(inscp),
            lines: LineSplit {
                inscp_scp_amt: d(inscp),
                ..Default::default()
            },
            deductible_left: d("800.00"),
            ratio: d("0.85"),
            pool_cap_left: d("150000.00"),
            large: Some((LargeFund::Hifob, d("0.90"), d("400000.00"))),
            account: Decimal::ZERO,
            mutual_aid: Decimal::ZERO,
            self_pay: false,
        }
    }

    fn parts(s: &Split) -> [String; 7] {
        [
            s.act_pay_dedc,
            s.hifp_pay,
            s.hifob_pay,
            s.fund_pay_sumamt,
            s.acct_pay,
            s.acct_mulaid_pay,
            s.psn_cash_pay,
        ]
        .map(|v| v.to_string())
    }

    #[test]
    fn the_table_of_cases() {
        // (case, input tweak, deductible, pooled, large, fund, account, mutual aid, cash)
        type Tweak = fn(&mut Input);
        let cases: &[(&str, &str, Tweak, [&str; 7])] = &[
            (
                "below the deductible: the person bears it all",
                "500.00",
                |_| {},
                ["500.00", "0.00", "0.00", "0.00", "0.00", "0.00", "500.00"],
            ),
            (
                "above the deductible: 85 % of the rest",
                "10800.00",
                |_| {},
                ["800.00", "8500.00", "0.00", "8500.00", "0.00", "0.00", "2300.00"],
            ),
            (
                "ratio by level: a secondary hospital, 400 and 88 %",
                "10400.00",
                |i| {
                    i.deductible_left = d("400.00");
                    i.ratio = d("0.88");
                },
                ["400.00", "8800.00", "0.00", "8800.00", "0.00", "0.00", "1600.00"],
            ),
            (
                "rounding half up: 85 % of 100.01 = 85.0085",
                "900.01",
                |_| {},
                ["800.00", "85.01", "0.00", "85.01", "0.00", "0.00", "815.00"],
            ),
            (
                "hitting the annual cap: 1000 left; 1000/0.85 = 1176.47 of the base taken, \
                 the other 8823.53 to the large-amount fund at 90 %",
                "10800.00",
                |i| {
                    i.pool_cap_left = d("1000.00");
                },
                [
                    "800.00", "1000.00", "7941.18", "8941.18", "0.00", "0.00", "1858.82",
                ],
            ),
            (
                "cap reached and no large-amount coverage: the person pays the rest",
                "10800.00",
                |i| {
                    i.pool_cap_left = Decimal::ZERO;
                    i.large = None;
                },
                ["800.00", "0.00", "0.00", "0.00", "0.00", "0.00", "10800.00"],
            ),
            (
                "large-amount fund capped too",
                "10800.00",
                |i| {
                    i.pool_cap_left = Decimal::ZERO;
                    i.large = Some((LargeFund::Hifob, d("0.90"), d("100.00")));
                },
                ["800.00", "0.00", "100.00", "100.00", "0.00", "0.00", "10700.00"],
            ),
            (
                "account pays the person's share",
                "10800.00",
                |i| i.account = d("5000.00"),
                ["800.00", "8500.00", "0.00", "8500.00", "2300.00", "0.00", "0.00"],
            ),
            (
                "account short: the rest in cash",
                "10800.00",
                |i| i.account = d("300.50"),
                [
                    "800.00", "8500.00", "0.00", "8500.00", "300.50", "0.00", "1999.50",
                ],
            ),
            (
                "account empty or not allowed: all cash",
                "10800.00",
                |i| i.account = Decimal::ZERO,
                ["800.00", "8500.00", "0.00", "8500.00", "0.00", "0.00", "2300.00"],
            ),
            (
                "own account short, a relative's account under mutual aid covers the rest",
                "10800.00",
                |i| {
                    i.account = d("300.00");
                    i.mutual_aid = d("1500.00");
                },
                [
                    "800.00", "8500.00", "0.00", "8500.00", "300.00", "1500.00", "500.00",
                ],
            ),
            (
                "self-paid registration: no fund, the account still may pay",
                "1000.00",
                |i| {
                    i.self_pay = true;
                    i.account = d("100.00");
                },
                ["0.00", "0.00", "0.00", "0.00", "100.00", "0.00", "900.00"],
            ),
        ];
        for (case, inscp, tweak, want) in cases {
            let mut i = stay(inscp);
            tweak(&mut i);
            let s = split(&i);
            assert_eq!(parts(&s), want.map(str::to_owned), "{case}");
            assert_eq!(
                s.fund_pay_sumamt + s.acct_pay + s.acct_mulaid_pay + s.psn_cash_pay,
                i.medfee_sumamt,
                "{case}"
            );
        }
    }

    #[test]
    fn parts_settled_on_different_terms_combine_to_the_whole() {
        // A visit's ordinary lines (1000.00, bearing the deductible 700.00 at 50 %), then a
        // filed special drug's line (2000.00 at 70 %) with what the first part left.
        let mut a = stay("1000.00");
        a.deductible_left = d("700.00");
        a.ratio = d("0.50");
        a.account = d("100.00");
        let first = split(&a);
        let b = Input {
            medfee_sumamt: d("2000.00"),
            lines: LineSplit {
                inscp_scp_amt: d("2000.00"),
                ..Default::default()
            },
            deductible_left: a.deductible_left - first.act_pay_dedc,
            ratio: d("0.70"),
            pool_cap_left: a.pool_cap_left - first.hifp_pay,
            account: a.account - first.acct_pay,
            ..a.clone()
        };
        let s = combine(first, split(&b));
        assert_eq!(
            (s.act_pay_dedc, s.hifp_pay, s.acct_pay, s.psn_cash_pay),
            (d("700.00"), d("1550.00"), d("100.00"), d("1350.00"))
        );
        assert_eq!(
            s.fund_pay_sumamt + s.acct_pay + s.acct_mulaid_pay + s.psn_cash_pay,
            d("3000.00")
        );
    }

    #[test]
    fn items_outside_the_catalogue_are_never_paid_by_the_account() {
        let mut i = stay("1000.00");
        i.medfee_sumamt = d("1200.00");
        i.lines.fulamt_ownpay_amt = d("200.00");
        i.deductible_left = Decimal::ZERO;
        i.ratio = d("0.50");
        i.account = d("10000.00");
        let s = split(&i);
        assert_eq!(
            (s.hifp_pay, s.acct_pay, s.psn_cash_pay),
            (d("500.00"), d("500.00"), d("200.00"))
        );
    }

    #[test]
    fn a_line_splits_by_the_catalogue() {
        let b = CatalogueItem {
            in_scope: true,
            selfpay_prop: d("0.10"),
            price_limit: None,
        };
        let s = split_line(d("3"), d("33.35"), d("100.05"), Some(&b));
        assert_eq!(
            (s.preselfpay_amt, s.inscp_scp_amt),
            (d("10.01"), d("90.04")),
            "10 % of 100.05 = 10.005, half up"
        );
        let bed = CatalogueItem {
            in_scope: true,
            selfpay_prop: Decimal::ZERO,
            price_limit: Some(d("50")),
        };
        let s = split_line(d("4"), d("80.00"), d("320.00"), Some(&bed));
        assert_eq!((s.overlmt_amt, s.inscp_scp_amt), (d("120.00"), d("200.00")));
        let s = split_line(d("1"), d("9.99"), d("9.99"), None);
        assert_eq!((s.fulamt_ownpay_amt, s.inscp_scp_amt), (d("9.99"), d("0.00")));
    }

    /// Property-style: over many generated settlements the parts add up to the total to the
    /// fen, none is negative, and a cancel (removing the settlement from the year's totals)
    /// leaves the next settlement exactly as if the first had never been booked.
    #[test]
    fn parts_always_sum_to_the_total_and_a_cancel_restores_everything() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(20261204);
        let fen_of = |n: i64| Decimal::new(n, 2);
        for case in 0..5000 {
            let ownpay = fen_of(rng.random_range(0..50_000));
            let inscp = fen_of(rng.random_range(0..5_000_000));
            let i = Input {
                medfee_sumamt: inscp + ownpay,
                lines: LineSplit {
                    fulamt_ownpay_amt: ownpay,
                    inscp_scp_amt: inscp,
                    ..Default::default()
                },
                deductible_left: fen_of(rng.random_range(0..200_000)),
                ratio: Decimal::new(rng.random_range(1..=10_000), 4),
                pool_cap_left: fen_of(rng.random_range(0..3_000_000)),
                large: rng.random_bool(0.5).then(|| {
                    (
                        LargeFund::Hifob,
                        Decimal::new(rng.random_range(0..=10_000), 4),
                        fen_of(rng.random_range(0..3_000_000)),
                    )
                }),
                account: fen_of(rng.random_range(0..300_000)),
                mutual_aid: fen_of(rng.random_range(0..100_000)),
                self_pay: rng.random_bool(0.1),
            };
            let s = split(&i);
            assert_eq!(
                s.fund_pay_sumamt + s.acct_pay + s.acct_mulaid_pay + s.psn_cash_pay,
                i.medfee_sumamt,
                "case {case}: {i:?} → {s:?}"
            );
            for v in [
                s.act_pay_dedc,
                s.hifp_pay,
                s.hifob_pay,
                s.fund_pay_sumamt,
                s.acct_pay,
                s.acct_mulaid_pay,
                s.psn_cash_pay,
            ] {
                assert!(v >= Decimal::ZERO && v.scale() == 2, "case {case}: {s:?}");
            }
            assert!(
                s.hifp_pay <= i.pool_cap_left && s.acct_pay <= i.account,
                "case {case}"
            );
            // Book it, then a second settlement; cancel the first: the second computed
            // against the restored totals equals the second computed with nothing booked.
            let booked = Input {
                deductible_left: i.deductible_left - s.act_pay_dedc,
                pool_cap_left: i.pool_cap_left - s.hifp_pay,
                account: i.account - s.acct_pay,
                mutual_aid: i.mutual_aid - s.acct_mulaid_pay,
                large: i.large.map(|(f, r, left)| (f, r, left - s.hifob_pay)),
                ..i.clone()
            };
            let restored = Input {
                deductible_left: booked.deductible_left + s.act_pay_dedc,
                pool_cap_left: booked.pool_cap_left + s.hifp_pay,
                account: booked.account + s.acct_pay,
                mutual_aid: booked.mutual_aid + s.acct_mulaid_pay,
                large: booked.large.map(|(f, r, left)| (f, r, left + s.hifob_pay)),
                ..booked.clone()
            };
            assert_eq!(restored, i, "case {case}: a cancel restores every total");
            assert_eq!(split(&restored), s, "case {case}");
        }
    }
}
