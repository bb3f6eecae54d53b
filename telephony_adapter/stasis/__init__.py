"""The Stasis application: Asterisk's view of calls turned into commands on
the core, and the core's routing decisions turned into ARI requests.

* ``tracker``: what Asterisk reports (ARI events) -> commands. Observes only,
  so it can replay captured traces and reconcile after a reconnect.
* ``flow``: what we decide (IVR, ACD, survey) -> ARI requests + commands.
* ``control``: agent and supervisor actions that need ARI (hold, transfer,
  conference, monitor, barge, force hang-up).
* ``app``: the loop that feeds ARI events to both and keeps the timers.
"""
