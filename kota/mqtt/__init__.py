"""Kota's MQTT edge: a fast QoS 1 subscriber for ingest (publishers use paho-mqtt)."""

from kota.mqtt._packets import Message, ProtocolError
from kota.mqtt._subscriber import Backoff, ConnectRefused, Subscriber

__all__ = ["Backoff", "ConnectRefused", "Message", "ProtocolError", "Subscriber"]
