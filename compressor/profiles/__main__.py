"""python -m compressor.profiles > compressor/profiles/profile.schema.json"""

import json

from compressor.profiles import json_schema

print(json.dumps(json_schema(), indent=2))
