"""The landing zone in the asset graph and the sensor that lands the stream."""
