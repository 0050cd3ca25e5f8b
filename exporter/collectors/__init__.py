"""One module per Datadog API area. Each owns three things and nothing else: the request a
configured query sends, the decoding of the answer, and its conversion into rendered families.
All of it is pure: the scheduler does the I/O and hands bytes in."""
