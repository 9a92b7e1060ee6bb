"""Cloud-side procedures over the EC2 port: the ENI lifecycle and leaked-ENI cleanup.

Written against ``vpccni.ports`` only, so they run unchanged over boto3 (AWS, the emulator,
moto) and over in-process fakes.
"""
