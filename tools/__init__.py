"""Developer tools. A package so that the tests import the browser and server helpers the screenshot tools use."""
