"""Runs an amqtt broker from a YAML file, the way `amqtt -c FILE` does, with one fix.

amqtt 0.12.1 loads each plugin's `Config` dataclass with dacite in strict mode and without
casting, so the HTTP plugins' enum settings (`request_method`, `params_mode`,
`response_mode`) cannot be given as YAML strings: `request_method: post` fails with
"wrong value type for field request_method". (The broker's own settings are cast; the
plugins' are not.) This launcher turns those three strings into amqtt's enums and then
starts the stock `amqtt.broker.Broker` with the file's settings unchanged. Plugins are
imported by their dotted names, and this script's directory is on the import path, so
`fleetca_amqtt.CertificateAuthHttpPlugin` (fleetca_amqtt.py, next to it) loads as well.

Usage: python3 run_amqtt.py CONFIG.yaml READY_FILE
It creates READY_FILE once the listeners accept connections and stops cleanly on SIGTERM.
"""

import asyncio
import logging
import signal
import sys
from pathlib import Path

import yaml
from amqtt.broker import Broker
from amqtt.contrib.http import ParamsMode, RequestMethod, ResponseMode

ENUMS = {"request_method": RequestMethod, "params_mode": ParamsMode, "response_mode": ResponseMode}


def load(path: str) -> dict:
    config = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    for name, settings in (config.get("plugins") or {}).items():
        # amqtt's HTTP plugins and fleetca_amqtt's subclass of them (fleetca_amqtt.py).
        if name.startswith(("amqtt.contrib.http.", "fleetca_amqtt.")) and settings:
            for key, enum in ENUMS.items():
                if isinstance(settings.get(key), str):
                    settings[key] = enum(settings[key])
    return config


async def main(config_path: str, ready_path: str) -> None:
    broker = Broker(load(config_path))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await broker.start()
    Path(ready_path).write_text("ready\n", encoding="utf-8")
    await stop.wait()
    await broker.shutdown()


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.DEBUG,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("transitions", "asyncio", "amqtt.mqtt.protocol", "amqtt.adapters"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    asyncio.run(main(sys.argv[1], sys.argv[2]))
