<?php

declare(strict_types=1);

namespace Warmpool;

/** The server cancelled the stream (the client went away): stop producing chunks. */
final class StreamStoppedException extends \RuntimeException
{
}
