"""A tool that needs a human's approval before it runs.

The model's call comes back as ``approval_pending``; a person approves or rejects it; either way
the model gets a tool message, and the audit log records who decided.

    python examples/approval.py            # asks on the terminal
    python examples/approval.py --approve  # or --reject, for scripts
"""

from __future__ import annotations

import sys

from tamma_tools import CallerContext, FunctionCallingManager, tool


@tool(isolation="in_process", requires_approval=True, destructive=True,
      permissions=["billing:refund"])  # fmt: skip
def refund(order_id: str, amount_eur: float) -> dict[str, object]:
    """Refund an order.

    Args:
        order_id: The order to refund.
        amount_eur: Amount in euros.
    """
    return {"order_id": order_id, "refunded_eur": amount_eur}


def main(argv: list[str]) -> int:
    manager = FunctionCallingManager()
    manager.register_tool(refund)
    agent = CallerContext(user_id="support-bot", permissions=frozenset({"billing:refund"}))
    call = {
        "id": "call_refund_1",
        "type": "function",
        "function": {"name": "refund", "arguments": '{"order_id": "A-1001", "amount_eur": 25.0}'},
    }
    pending = manager.execute_function_call_sync(call, agent)
    print("model sees:", pending.to_message()["content"])
    item = manager.pending_approvals()[0]
    print(
        f"pending: {item.call.function.name}({item.arguments}) requested by {item.context.user_id}"
    )
    if "--approve" in argv:
        answer = "y"
    elif "--reject" in argv:
        answer = "n"
    else:
        answer = input("approve? [y/N] ").strip().lower()
    if answer == "y":
        result = manager.approve_sync(item.call.id, approver="alice")
    else:
        result = manager.reject(item.call.id, "not eligible for a refund", approver="alice")
    print("model sees:", result.to_message()["content"])
    print("decisions:", [(r.outcome, r.approver) for r in manager.history])
    manager.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
