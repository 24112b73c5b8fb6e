//! The cost limit: every comprehension's iterations pass through a meter that counts them and checks a deadline.
//! Comprehensions (`all`, `exists`, `map`, `filter`, ...) are the only way a CEL expression does more than linear
//! work, so metering them bounds the whole expression.

use super::CostLimit;
use cel::common::ast::Expr;
use cel::{ExecutionError, IdedExpr, Value};
use std::cell::Cell;
use std::time::Instant;

/// Name of the metering function injected into comprehensions.
pub(super) const METER: &str = "@beamstack_meter";

struct Meter {
    remaining: Cell<u64>,
    deadline: Cell<Option<Instant>>,
    exceeded: Cell<Option<&'static str>>,
}

thread_local! {
    static METER_STATE: Meter = const { Meter {
        remaining: Cell::new(u64::MAX),
        deadline: Cell::new(None),
        exceeded: Cell::new(None),
    } };
}

/// Passes a comprehension's loop condition through, counting one iteration.
pub(super) fn meter(value: Value) -> Result<Value, ExecutionError> {
    METER_STATE.with(|meter| {
        let remaining = meter.remaining.get();
        if remaining == 0 {
            if meter.exceeded.get().is_none() {
                meter.exceeded.set(Some("iterations"));
            }
            return Err(ExecutionError::function_error("cost", "cost limit exceeded"));
        }
        meter.remaining.set(remaining - 1);
        // Reading the clock on every iteration would double the cost of a cheap loop.
        if remaining % 1024 == 0 && meter.deadline.get().is_some_and(|deadline| Instant::now() > deadline) {
            // cel defers errors inside all()/exists() steps; with nothing left, the next loop condition fails too.
            meter.remaining.set(0);
            meter.exceeded.set(Some("time"));
            return Err(ExecutionError::function_error("cost", "time limit exceeded"));
        }
        Ok(value)
    })
}
/// Arms the meter of this thread for one evaluation.
pub(super) fn start(limit: CostLimit) {
    METER_STATE.with(|meter| {
        meter.remaining.set(limit.iterations);
        meter.deadline.set(Some(Instant::now() + limit.time));
        meter.exceeded.set(None);
    });
}

/// Which limit the evaluation ran into, if any, and the iterations it used.
pub(super) fn finish(limit: CostLimit) -> (Option<&'static str>, u64) {
    METER_STATE.with(|meter| (meter.exceeded.take(), limit.iterations - meter.remaining.get()))
}

/// Wraps every comprehension's loop condition in the meter: `@beamstack_meter(<condition>)`.
pub(super) fn meter_comprehensions(expression: &mut IdedExpr, next_id: &mut u64) {
    match &mut expression.expr {
        Expr::Call(call) => {
            if let Some(target) = &mut call.target {
                meter_comprehensions(target, next_id);
            }
            call.args
                .iter_mut()
                .for_each(|argument| meter_comprehensions(argument, next_id));
        }
        Expr::Select(select) => meter_comprehensions(&mut select.operand, next_id),
        Expr::List(list) => list
            .elements
            .iter_mut()
            .for_each(|element| meter_comprehensions(element, next_id)),
        Expr::Map(map) => {
            for entry in &mut map.entries {
                if let cel::common::ast::EntryExpr::MapEntry(entry) = &mut entry.expr {
                    meter_comprehensions(&mut entry.key, next_id);
                    meter_comprehensions(&mut entry.value, next_id);
                }
            }
        }
        Expr::Comprehension(comprehension) => {
            let comprehension = comprehension.as_mut();
            for child in [
                &mut comprehension.iter_range,
                &mut comprehension.accu_init,
                &mut comprehension.loop_cond,
                &mut comprehension.loop_step,
                &mut comprehension.result,
            ] {
                meter_comprehensions(child, next_id);
            }
            let id = *next_id;
            *next_id += 1;
            // cel runs map() and filter() on a fast path that needs a literal loop condition; there the meter goes
            // on the per-item work (the filter's guard, or the mapped element) so the fast path is kept.
            let target = if matches!(comprehension.loop_cond.expr, Expr::Literal(_)) {
                append_step_work(&mut comprehension.loop_step, &comprehension.accu_var)
            } else {
                None
            };
            let target = match target {
                Some(target) => target,
                None => &mut comprehension.loop_cond,
            };
            let work = std::mem::take(target);
            *target = IdedExpr {
                id,
                expr: Expr::Call(cel::common::ast::CallExpr {
                    func_name: METER.to_owned(),
                    target: None,
                    args: vec![work],
                }),
            };
        }
        _ => {}
    }
}

/// In an appending step (`@result + [item]`, or `guard ? @result + [item] : @result`), the expression evaluated once
/// per element: the guard, else the item.
fn append_step_work<'a>(step: &'a mut IdedExpr, accumulator: &str) -> Option<&'a mut IdedExpr> {
    let Expr::Call(call) = &mut step.expr else { return None };
    match (call.func_name.as_str(), call.args.as_mut_slice()) {
        ("_?_:_", [guard, _, _]) => Some(guard),
        ("_+_", [accumulated, appended]) if matches!(&accumulated.expr, Expr::Ident(name) if name == accumulator) => {
            match &mut appended.expr {
                Expr::List(list) if list.elements.len() == 1 => list.elements.first_mut(),
                _ => None,
            }
        }
        _ => None,
    }
}
