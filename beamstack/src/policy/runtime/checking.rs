//! What a policy expression may name: the variables in scope and the functions the runtime knows. cel has no type
//! checker, so a typo like `objet.spec` would otherwise only fail at admission time.

use super::VARIABLES;
use cel::IdedExpr;
use cel::common::ast::{ComprehensionExpr, Expr};
use std::collections::HashSet;

/// Standard CEL functions and operators (cel's stdlib and the macros' helpers).
pub(super) const STANDARD_FUNCTIONS: [&str; 33] = [
    "size",
    "contains",
    "startsWith",
    "endsWith",
    "string",
    "int",
    "uint",
    "double",
    "bool",
    "bytes",
    "type",
    "dyn",
    "has",
    "all",
    "exists",
    "exists_one",
    "map",
    "filter",
    "max",
    "min",
    "optional.of",
    "optional.none",
    "optional.ofNonZeroValue",
    "hasValue",
    "value",
    "or",
    "orValue",
    "duration",
    "timestamp",
    "indexOf",
    "lastIndexOf",
    "substring",
    "trim",
];

/// Checks that every identifier is a variable in scope and every function is known. Operators and the macros'
/// internal helpers (names starting with `_` or `@`) are the parser's own.
pub(super) fn check_references(
    expr: &Expr,
    scope: &mut Vec<String>,
    functions: &HashSet<String>,
) -> Result<(), (u64, String)> {
    let recurse = |child: &IdedExpr, scope: &mut Vec<String>| -> Result<(), (u64, String)> {
        check_references(&child.expr, scope, functions)
            .map_err(|(id, message)| (if id == 0 { child.id } else { id }, message))
    };
    match expr {
        Expr::Ident(name) => {
            if scope.iter().any(|bound| bound == name) {
                Ok(())
            } else {
                Err((
                    0,
                    format!("undeclared reference to `{name}`: use one of {}", VARIABLES.join(", ")),
                ))
            }
        }
        Expr::Call(call) => {
            let name = call.func_name.as_str();
            if !(name.starts_with('_') || name.starts_with('@') || name == "!_" || functions.contains(name)) {
                // A namespaced name such as `optional.of` parses as a call; unknown ones are reported.
                return Err((0, format!("unknown function `{name}`")));
            }
            if let Some(target) = &call.target {
                recurse(target, scope)?;
            }
            for argument in &call.args {
                recurse(argument, scope)?;
            }
            Ok(())
        }
        Expr::Select(select) => recurse(&select.operand, scope),
        Expr::List(list) => list.elements.iter().try_for_each(|element| recurse(element, scope)),
        Expr::Map(map) => map.entries.iter().try_for_each(|entry| match &entry.expr {
            cel::common::ast::EntryExpr::MapEntry(entry) => {
                recurse(&entry.key, scope)?;
                recurse(&entry.value, scope)
            }
            cel::common::ast::EntryExpr::StructField(field) => recurse(&field.value, scope),
        }),
        Expr::Struct(structure) => structure.entries.iter().try_for_each(|entry| match &entry.expr {
            cel::common::ast::EntryExpr::MapEntry(entry) => {
                recurse(&entry.key, scope)?;
                recurse(&entry.value, scope)
            }
            cel::common::ast::EntryExpr::StructField(field) => recurse(&field.value, scope),
        }),
        Expr::Comprehension(comprehension) => {
            recurse(&comprehension.iter_range, scope)?;
            recurse(&comprehension.accu_init, scope)?;
            let before = scope.len();
            scope.push(comprehension.iter_var.clone());
            if let Some(second) = &comprehension.iter_var2 {
                scope.push(second.clone());
            }
            scope.push(comprehension.accu_var.clone());
            let result = recurse(&comprehension.loop_cond, scope)
                .and_then(|()| recurse(&comprehension.loop_step, scope))
                .and_then(|()| recurse(&comprehension.result, scope));
            scope.truncate(before);
            result
        }
        Expr::Literal(_) | Expr::Unspecified => Ok(()),
        #[allow(unreachable_patterns)]
        _ => Ok(()),
    }
}

pub(super) fn max_id(expression: &IdedExpr) -> u64 {
    let mut highest = expression.id;
    visit(expression, &mut |node| highest = highest.max(node.id));
    highest
}

pub(super) fn visit(expression: &IdedExpr, f: &mut dyn FnMut(&IdedExpr)) {
    f(expression);
    for child in children(expression) {
        visit(child, f);
    }
}

/// The direct subexpressions of `expression`, for analyses that walk the tree.
pub(crate) fn children(expression: &IdedExpr) -> Vec<&IdedExpr> {
    match &expression.expr {
        Expr::Call(call) => call.target.as_deref().into_iter().chain(&call.args).collect(),
        Expr::Select(select) => vec![&select.operand],
        Expr::List(list) => list.elements.iter().collect(),
        Expr::Map(map) => map
            .entries
            .iter()
            .filter_map(|entry| match &entry.expr {
                cel::common::ast::EntryExpr::MapEntry(entry) => Some([&entry.key, &entry.value]),
                _ => None,
            })
            .flatten()
            .collect(),
        Expr::Struct(structure) => structure
            .entries
            .iter()
            .filter_map(|entry| match &entry.expr {
                cel::common::ast::EntryExpr::StructField(field) => Some(&field.value),
                _ => None,
            })
            .collect(),
        Expr::Comprehension(comprehension) => {
            let ComprehensionExpr {
                iter_range,
                accu_init,
                loop_cond,
                loop_step,
                result,
                ..
            } = comprehension.as_ref();
            vec![iter_range, accu_init, loop_cond, loop_step, result]
        }
        _ => Vec::new(),
    }
}
