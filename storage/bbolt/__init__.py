"""etcd's backend file format, bbolt: read any file etcd wrote, write files etcd and etcdctl open.

See layout.py for the page format; reader.py and writer.py for the two directions.
"""

from storage.bbolt.bucket import Bucket
from storage.bbolt.reader import BoltReader, CorruptDatabase, Meta, read_database
from storage.bbolt.writer import write_database

__all__ = ["BoltReader", "Bucket", "CorruptDatabase", "Meta", "read_database", "write_database"]
