#!/usr/bin/python
"""Ansible module mailprov.site.mailprov_site: converge a mail site with ``mailprov apply``."""

from __future__ import annotations

import json

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
---
module: mailprov_site
short_description: Make a mailprov site (domains, mailboxes, aliases) what a state declares
description:
  - Runs C(mailprov apply --json) on the managed host with a state file or an inline state.
  - Check mode runs C(apply --check) (nothing is changed); diff mode shows the plan, one line
    per object and attribute, before and after (secrets masked).
  - Objects the state does not declare are kept unless I(prune) is true.
options:
  state:
    description: The state as a mapping (the format of C(mailprov export --format json)).
    type: dict
  src:
    description: A state file (TOML or JSON) on the managed host. Give I(state) or I(src).
    type: path
  prune:
    description: Also delete domains, mailboxes and aliases the state does not declare.
    type: bool
    default: false
  deploy:
    description: After the store changes, install the server config (C(deploy apply)).
    type: bool
    default: false
  target:
    description: With I(deploy), install under this folder instead of the configured ones.
    type: path
  reload:
    description: With I(deploy), reload the servers whose files changed.
    type: bool
    default: false
  config:
    description: The site config file (C(mailprov --config)).
    type: path
  store:
    description: The store URL (C(mailprov --store)); may hold a password, so it is not logged.
    type: str
  executable:
    description: How to run mailprov.
    type: list
    elements: str
    default: [mailprov]
"""

EXAMPLES = r"""
- name: Converge the mail site
  mailprov.site.mailprov_site:
    config: /etc/mailprov/mailprov.toml
    state:
      version: 1
      domains: {example.org: {}}
      mailboxes:
        alice@example.org: {name: Alice, quota: 2G, password_hash: "{{ alice_hash }}"}
      aliases:
        postmaster@example.org: {destinations: [alice@example.org]}
"""

RETURN = r"""
changed:
  description: Whether anything changed (in check mode, would change).
  type: bool
plan:
  description: C(summary) (create/update/delete counts) and C(changes), each with its
    C(kind), C(key), C(action) and C(attributes) (before and after; secrets masked).
  type: dict
passwords:
  description: Passwords generated for new mailboxes (generate_password), shown once.
  type: dict
deploy:
  description: What the deploy step did, with I(deploy).
  type: dict
"""

MARK = {"create": "+", "update": "~", "delete": "-"}


def plan_lines(plan: dict) -> str:
    """The plan as diff mode shows it."""
    out = []
    for change in plan.get("changes", []):
        out.append(f"{MARK[change['action']]} {change['kind']} {change['key']}")
        for attr, values in change.get("attributes", {}).items():
            before, after = values.get("before"), values.get("after")
            if change["action"] == "update":
                out.append(f"    {attr}: {json.dumps(before)} -> {json.dumps(after)}")
            else:
                out.append(f"    {attr}: {json.dumps(after if after is not None else before)}")
    return "\n".join(out) + ("\n" if out else "")


def command(params: dict, *, check: bool) -> list[str]:
    """The mailprov command line for these options."""
    argv = [*params["executable"], "--json", "--non-interactive"]
    if params["config"]:
        argv += ["--config", params["config"]]
    if params["store"]:
        argv += ["--store", params["store"]]
    argv += ["apply", params["src"] or "-"]
    if params["state"] is not None:
        argv += ["--format", "json"]
    if check:
        argv.append("--check")
    if params["prune"]:
        argv.append("--prune")
    if params["deploy"] and not check:
        argv.append("--deploy")
        if params["target"]:
            argv += ["--target", params["target"]]
        if params["reload"]:
            argv.append("--reload")
    return argv


def main() -> None:
    """Run apply and report its result the way Ansible expects."""
    module = AnsibleModule(
        argument_spec={
            "state": {"type": "dict"},
            "src": {"type": "path"},
            "prune": {"type": "bool", "default": False},
            "deploy": {"type": "bool", "default": False},
            "target": {"type": "path"},
            "reload": {"type": "bool", "default": False},
            "config": {"type": "path"},
            "store": {"type": "str", "no_log": True},
            "executable": {"type": "list", "elements": "str", "default": ["mailprov"]},
        },
        required_one_of=[("state", "src")],
        mutually_exclusive=[("state", "src")],
        supports_check_mode=True,
    )
    params = module.params
    argv = command(params, check=module.check_mode)
    data = json.dumps(params["state"]) if params["state"] is not None else None
    rc, out, err = module.run_command(argv, data=data, check_rc=False)
    try:
        result = json.loads(out)
    except ValueError:
        module.fail_json(msg=f"mailprov printed no JSON (exit {rc}): {err.strip()[:500]}", rc=rc)
    if "error" in result:
        error = result["error"]
        module.fail_json(
            msg=error.get("message", "mailprov apply failed"),
            error=error,
            rc=rc,
        )
    response = {"changed": bool(result["changed"]), "plan": result["plan"]}
    for key in ("passwords", "deploy", "dkim"):
        if key in result:
            response[key] = result[key]
    if module._diff:  # Ansible's own way to ask for diff mode
        response["diff"] = {"prepared": plan_lines(result["plan"])}
    module.exit_json(**response)


if __name__ == "__main__":
    main()
