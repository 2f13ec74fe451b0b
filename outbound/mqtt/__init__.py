"""The MQTT publisher (issue 18): JSON or Sparkplug B to an existing broker, with store and forward."""
