"""`crq`: the command line of crq (typer + rich), one module per command group.

    crq validate FILE...            check spec files as the start function will (validate.py)
    crq validate --online FILE...   ... and against Clean Rooms and the stack (preflight)
    crq render FILE [--at TIME]     the StartProtectedQuery request a spec produces (render.py)
    crq engine --config FILE        the local Clean Rooms engine over HTTP (engine.py)
    crq sandbox [--config FILE]     the whole stack offline (moto + engine + handlers) (sandbox.py)
    crq demo                        the sandbox, the example specs, their notifications (demo.py)
    crq status [--limit N] [--spec NAME] [--status WORD] [--since AGE] [--json]
                                    recent runs from the ledger's Recent index (status.py)
    crq watch QUERY_ID              a query's progress until it ends (watch.py)
    crq schedules | trigger | backfill   spec schedules (schedules.py)

`app.py` builds the typer app and registers the commands; `main` there is the console script.
What the commands share: `guard.py` (every failure as one line on stderr and an exit code,
never a traceback), `console.py` (where output goes), `aws.py` (boto3 clients, a deployed
stack's outputs).

Commands that talk to AWS use boto3's usual configuration (the `export` lines the sandbox
prints, or a profile); `--stack NAME` reads a deployed stack's outputs instead.
"""
