"""What the consumer of a federated job needs besides Flower's own commands, run with the Flower
environment's Python:

    python consumer_tools.py fab APP_FOLDER OUT_FILE
        writes the app as Flower sends it to SuperNodes (its FAB), the file the consumer orders;
    python consumer_tools.py tls OUT_FOLDER
        writes a certificate authority (ca.pem) and a certificate for a SuperLink at 127.0.0.1
        signed by it (server.pem, server.key): for a local SuperLink, as the demo runs one;
    python consumer_tools.py superlink TLS_FOLDER PORT
        becomes Flower's SuperLink on 127.0.0.1:PORT with the certificates `tls` wrote, admitting
        only the SuperNodes whose keys are registered, never installing an app's dependencies;
    python consumer_tools.py baseline PARTITIONS_FOLDER --provider K --epochs N --rate R
        prints, as JSON, the accuracy on each provider's held-out rows of a model trained on
        provider K's rows alone, for comparison with the federated model.
"""

import argparse
import datetime
import ipaddress
import json
import os
import pathlib
import sys

from insitu_fedlr import model


def fab(app, out):
    from flwr.cli.build import build_fab_from_disk

    pathlib.Path(out).write_bytes(build_fab_from_disk(pathlib.Path(app)))


def tls(folder):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)

    def certificate(subject, issuer, key, signer, extension):
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(extension, critical=False)
            .sign(signer, hashes.SHA256())
        )

    ca_key = ec.generate_private_key(ec.SECP384R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "federated consumer CA")])
    ca = certificate(
        ca_name, ca_name, ca_key, ca_key, x509.BasicConstraints(ca=True, path_length=None)
    )
    key = ec.generate_private_key(ec.SECP384R1())
    server = certificate(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]),
        ca_name,
        key,
        ca_key,
        x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
    )
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (folder / "server.pem").write_bytes(server.public_bytes(serialization.Encoding.PEM))
    (folder / "server.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def superlink(folder, port):
    folder = pathlib.Path(folder)
    program = pathlib.Path(sys.executable).parent / "flower-superlink"
    arguments = [
        str(program),
        "--disable-runtime-dependency-installation",
        "--enable-supernode-auth",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--ssl-certfile",
        str(folder / "server.pem"),
        "--ssl-keyfile",
        str(folder / "server.key"),
        "--ssl-ca-certfile",
        str(folder / "ca.pem"),
    ]
    # This process becomes the SuperLink: stopping it stops the SuperLink.
    os.execv(program, arguments)


def baseline(partitions, provider, epochs, rate):
    folders = sorted(pathlib.Path(partitions).glob("provider-*"))
    rows = [model.split(*model.load(folder / "data.csv")) for folder in folders]
    (x, y), _ = rows[provider]
    weights = model.train(model.initial(x.shape[1]), x, y, epochs, rate)
    held_out = [model.accuracy(weights, hx, hy) for _, (hx, hy) in rows]
    sizes = [len(hy) for _, (_, hy) in rows]
    overall = sum(a * n for a, n in zip(held_out, sizes)) / sum(sizes)
    json.dump({"provider": provider, "accuracy": overall, "perProvider": held_out}, sys.stdout)
    print()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("fab")
    command.add_argument("app")
    command.add_argument("out")
    command = commands.add_parser("tls")
    command.add_argument("folder")
    command = commands.add_parser("superlink")
    command.add_argument("folder")
    command.add_argument("port", type=int)
    command = commands.add_parser("baseline")
    command.add_argument("partitions")
    command.add_argument("--provider", type=int, default=0)
    command.add_argument("--epochs", type=int, default=15)
    command.add_argument("--rate", type=float, default=0.3)
    args = parser.parse_args()
    if args.command == "fab":
        fab(args.app, args.out)
    elif args.command == "tls":
        tls(args.folder)
    elif args.command == "superlink":
        superlink(args.folder, args.port)
    else:
        baseline(args.partitions, args.provider, args.epochs, args.rate)


if __name__ == "__main__":
    main()
